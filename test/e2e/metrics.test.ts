import { connect as http2Connect } from "node:http2";
import postgres from "postgres";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService, StartPoint, type SubscribeResponse } from "../../gen/eventstore/v1/eventstore_pb";
import { loadConfig } from "../../src/server/config";
import { scrape, valueOf, type Sample } from "../support/prometheus-text";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// Each metric of docs/operations.md, driven through real servers on one PostgreSQL and read
// back from GET /metrics: values, not only names. Server A is the one observed; B writes to the
// same database (its commits reach A as notifications); C has a pool of two and a short
// statement timeout, for the pool and timeout figures.

const APPEND = "/eventstore.v1.EventStoreService/Append";
const SUBSCRIBE = "/eventstore.v1.EventStoreService/Subscribe";
const DATA = new TextEncoder().encode("abcd");

let db: TestDatabase;
let a: TestServer;
let b: TestServer;
let c: TestServer;
let clientA: Client<typeof EventStoreService>;
let clientB: Client<typeof EventStoreService>;
let admin: postgres.Sql;

const settings = (over: { pollIntervalMs?: number; bufferEvents?: number } = {}) => {
  const defaults = loadConfig([], {});
  return {
    subscriptions: { ...defaults.subscriptions, pollIntervalMs: over.pollIntervalMs ?? 1000, bufferEvents: over.bufferEvents ?? 10_000 },
    metrics: { host: "127.0.0.1", port: 0, maxConsumers: 1000 },
  };
};

const metricsOf = (server: TestServer) => scrape(server.metricsPort!);
const events = (n: number) => Array.from({ length: n }, () => ({ type: "Deposited", payload: { case: "data" as const, value: DATA } }));

beforeAll(async () => {
  db = await createTestDatabase();
  a = await startTestServer({ kind: "postgres", url: db.url }, {}, settings({ pollIntervalMs: 200, bufferEvents: 2 }));
  b = await startTestServer({ kind: "postgres", url: db.url }, {}, settings());
  c = await startTestServer({ kind: "postgres", url: db.url, poolSize: 2 }, {}, { ...settings(), statementTimeoutMs: 1000 });
  clientA = createClient(EventStoreService, createGrpcTransport({ baseUrl: a.url }));
  clientB = createClient(EventStoreService, createGrpcTransport({ baseUrl: b.url }));
  admin = postgres(db.url, { max: 2, onnotice: () => {} });
}, 60_000);

afterAll(async () => {
  await admin?.end();
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  await db?.drop();
});

test("GET /metrics is Prometheus text; any other path is 404", async () => {
  const res = await fetch(`http://127.0.0.1:${a.metricsPort}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  expect((await fetch(`http://127.0.0.1:${a.metricsPort}/`)).status).toBe(404);
});

test("calls are counted by method and code, with their time and messages; appends with their events, bytes, batches and conflicts", async () => {
  for (const n of [1, 2, 3]) await clientA.append({ stream: "acct-1", events: events(n) });
  await expect(clientA.append({ stream: "acct-1", expected: { case: "expectedRevision", value: 99n }, events: events(1) })).rejects.toMatchObject({ code: Code.Aborted });
  const connectJson = createClient(EventStoreService, createConnectTransport({ baseUrl: a.url, httpVersion: "1.1" }));
  await expect(connectJson.getStream({ stream: "missing" })).rejects.toMatchObject({ code: Code.NotFound });
  // Connect answers HTTP 404, which gRPC clients read as UNIMPLEMENTED.
  expect(await unknownMethodStatus(a.port)).toBe("http 404");

  const m = await metricsOf(a);
  expect(valueOf(m, "eventstore_rpc_calls_total", { method: APPEND, code: "OK" })).toBe(3);
  expect(valueOf(m, "eventstore_rpc_calls_total", { method: APPEND, code: "ABORTED" })).toBe(1);
  expect(valueOf(m, "eventstore_rpc_calls_total", { method: "/eventstore.v1.EventStoreService/GetStream", code: "NOT_FOUND" })).toBe(1);
  expect(valueOf(m, "eventstore_rpc_calls_total", { method: "unknown", code: "UNIMPLEMENTED" })).toBe(1);
  expect(valueOf(m, "eventstore_rpc_duration_seconds_count", { method: APPEND, code: "OK" })).toBe(3);
  expect(valueOf(m, "eventstore_rpc_duration_seconds_sum", { method: APPEND, code: "OK" })).toBeGreaterThan(0);
  expect(valueOf(m, "eventstore_rpc_duration_seconds_bucket", { method: APPEND, code: "OK", le: "+Inf" })).toBe(3);
  expect(valueOf(m, "eventstore_rpc_messages_sent_total", { method: APPEND })).toBe(3);

  expect(valueOf(m, "eventstore_appends_total")).toBe(3);
  expect(valueOf(m, "eventstore_events_written_total")).toBe(6);
  expect(valueOf(m, "eventstore_event_bytes_written_total")).toBe(6 * DATA.byteLength);
  expect(valueOf(m, "eventstore_append_conflicts_total")).toBe(1);
  // One append at a time: each its own batch.
  expect(valueOf(m, "eventstore_append_batch_appends_count")).toBe(3);
  expect(valueOf(m, "eventstore_append_batch_appends_sum")).toBe(3);
  expect(valueOf(m, "eventstore_append_batch_events_sum")).toBe(6);
  expect(valueOf(m, "eventstore_append_batch_events_bucket", { le: "2" })).toBe(2);
  // The conflict was a transaction too.
  expect(valueOf(m, "eventstore_db_operation_duration_seconds_count", { operation: "append" })).toBe(4);
  expect(valueOf(m, "eventstore_db_pool_connections", { pool: "write" })).toBe(3);
  expect(valueOf(m, "eventstore_db_pool_connections", { pool: "read" })).toBe(7);
  expect(valueOf(m, "eventstore_connections_open")).toBeGreaterThanOrEqual(1);
});

test("subscriptions: open by kind, events delivered, falls behind; the feed's wake-ups by cause and the last notification's age", async () => {
  const before = await metricsOf(a);
  const wakeups = (m: Sample[], cause: string) => valueOf(m, "eventstore_feed_wakeups_total", { cause })!;
  const cancel = new AbortController();
  const messages = clientA.subscribe({ stream: "acct-1", start: { case: "startPoint", value: StartPoint.START } }, { signal: cancel.signal });
  const sub = messages[Symbol.asyncIterator]();
  let received = 0;
  const next = async (): Promise<SubscribeResponse["message"]> => {
    const r = await sub.next();
    if (r.done) throw new Error("the subscription ended");
    received++;
    return r.value.message;
  };
  const nextEvents = async (): Promise<number> => {
    for (;;) {
      const m = await next();
      if (m.case === "events") return m.value.events.length;
    }
  };
  expect((await next()).case).toBe("confirmation");
  expect(await nextEvents()).toBe(6);
  expect((await next()).case).toBe("caughtUp");
  let m = await metricsOf(a);
  expect(valueOf(m, "eventstore_subscriptions_open", { kind: "plain" })).toBe(1);
  expect(valueOf(m, "eventstore_subscription_events_delivered_total", { kind: "plain" })).toBe(6);

  // A commit here wakes the feed itself; one on B reaches it as a notification.
  await clientA.append({ stream: "acct-1", events: events(1) });
  expect(await nextEvents()).toBe(1);
  await clientB.append({ stream: "acct-1", events: events(1) });
  expect(await nextEvents()).toBe(1);
  m = await metricsOf(a);
  // A's own commit also comes back to it as a notification, which may come first: then the
  // local wake-up finds the feed past it. B's commit reaches A only as a notification.
  expect(wakeups(m, "local") + wakeups(m, "notify")).toBeGreaterThanOrEqual(wakeups(before, "local") + wakeups(before, "notify") + 2);
  expect(wakeups(m, "notify")).toBeGreaterThan(wakeups(before, "notify"));
  expect(wakeups(m, "poll")).toBeGreaterThan(0);
  expect(wakeups(m, "reconnect")).toBe(1);
  expect(valueOf(m, "eventstore_feed_last_notification_age_seconds")).toBeLessThan(5);
  expect(valueOf(m, "eventstore_subscription_events_delivered_total", { kind: "plain" })).toBe(8);

  // Three live events overflow A's buffer of two: the subscriber reads them from storage instead.
  await clientA.append({ stream: "acct-1", events: events(3) });
  for (let kind = await next(); kind.case !== "fellBehind"; kind = await next());
  expect(await nextEvents()).toBe(3);
  m = await metricsOf(a);
  expect(valueOf(m, "eventstore_subscriptions_fell_behind_total")).toBe(1);
  expect(valueOf(m, "eventstore_subscription_events_delivered_total", { kind: "plain" })).toBe(11);

  // A durable subscription and a consumer group member, open beside it.
  const others = new AbortController();
  const durable = clientA.subscribe({ stream: "acct-1", subscriptionName: "ledger" }, { signal: others.signal })[Symbol.asyncIterator]();
  const member = clientA.subscribe({ consumerGroup: { member: 0, size: 2 } }, { signal: others.signal })[Symbol.asyncIterator]();
  expect((await durable.next()).value?.message.case).toBe("confirmation");
  expect((await member.next()).value?.message.case).toBe("confirmation");
  m = await metricsOf(a);
  expect(valueOf(m, "eventstore_subscriptions_open", { kind: "durable" })).toBe(1);
  expect(valueOf(m, "eventstore_subscriptions_open", { kind: "consumer_group" })).toBe(1);

  cancel.abort();
  others.abort();
  await Promise.allSettled([sub.next(), durable.next(), member.next()]);
  m = await until(async () => {
    const now = await metricsOf(a);
    return valueOf(now, "eventstore_subscriptions_open", { kind: "plain" }) === 0 && valueOf(now, "eventstore_rpc_calls_total", { method: SUBSCRIBE, code: "CANCELLED" }) === 3 && now;
  }, "the subscriptions counted as ended");
  expect(valueOf(m, "eventstore_subscriptions_open", { kind: "durable" })).toBe(0);
  expect(valueOf(m, "eventstore_subscriptions_open", { kind: "consumer_group" })).toBe(0);
  // Every message the plain subscriber read was counted as sent (and the others' confirmations, at least).
  expect(valueOf(m, "eventstore_rpc_messages_sent_total", { method: SUBSCRIBE })).toBeGreaterThanOrEqual(received + 2);
});

test("an embedded server's feed is woken by its own commits: the local cause", async () => {
  const embedded = await startTestServer({ kind: "embedded", dataDir: "memory" }, {}, settings({ pollIntervalMs: 3_600_000 }));
  try {
    const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: embedded.url }));
    const cancel = new AbortController();
    const sub = client.subscribe({ stream: "acct-9", start: { case: "startPoint", value: StartPoint.END } }, { signal: cancel.signal })[Symbol.asyncIterator]();
    expect((await sub.next()).value?.message.case).toBe("confirmation");
    const before = valueOf(await metricsOf(embedded), "eventstore_feed_wakeups_total", { cause: "local" })!;
    await client.append({ stream: "acct-9", events: events(1) });
    for (let r = await sub.next(); r.value?.message.case !== "events"; r = await sub.next());
    const m = await metricsOf(embedded);
    expect(valueOf(m, "eventstore_feed_wakeups_total", { cause: "local" })).toBe(before + 1);
    expect(valueOf(m, "eventstore_feed_wakeups_total", { cause: "notify" })).toBe(0);
    // One pool of one connection, counted as the write pool.
    expect(valueOf(m, "eventstore_db_pool_connections", { pool: "write" })).toBe(1);
    expect(valueOf(m, "eventstore_db_pool_connections", { pool: "read" })).toBeUndefined();
    cancel.abort();
    await sub.next().catch(() => {});
  } finally {
    await embedded.stop();
  }
});

test("the lag of each durable subscription and projection, in positions and in seconds behind the head", async () => {
  const head = await a.store.head();
  expect(head).toBeGreaterThan(2n);
  await clientA.commitCheckpoint({ subscriptionName: "ledger", position: 2n });
  await clientA.commitCheckpoint({ subscriptionName: "at-head", position: head! });
  await a.store.projections.create({ name: "balances", initialState: new Uint8Array(), stateContentType: "application/json", status: "running" });
  await a.store.projections.create({ name: "parked", initialState: new Uint8Array(), stateContentType: "application/json", status: "idle" });
  await new Promise((r) => setTimeout(r, 20));
  const m = await metricsOf(a);
  expect(valueOf(m, "eventstore_consumer_lag_events", { kind: "subscription", name: "ledger" })).toBe(Number(head) - 2);
  expect(valueOf(m, "eventstore_consumer_lag_seconds", { kind: "subscription", name: "ledger" })).toBeGreaterThan(0.02);
  expect(valueOf(m, "eventstore_consumer_lag_events", { kind: "subscription", name: "at-head" })).toBe(0);
  expect(valueOf(m, "eventstore_consumer_lag_seconds", { kind: "subscription", name: "at-head" })).toBe(0);
  expect(valueOf(m, "eventstore_consumer_lag_events", { kind: "projection", name: "balances" })).toBe(Number(head));
  // An idle projection is not meant to run: its lag would only raise alerts.
  expect(valueOf(m, "eventstore_consumer_lag_events", { kind: "projection", name: "parked" })).toBeUndefined();
  // Every server reads them from the database alike.
  expect(valueOf(await metricsOf(b), "eventstore_consumer_lag_events", { kind: "subscription", name: "ledger" })).toBe(Number(head) - 2);
});

test("a lag query that fails leaves only the lag out of the scrape", async () => {
  await admin`alter table eventstore.subscription_checkpoints rename to subscription_checkpoints_away`;
  try {
    const m = await metricsOf(a);
    expect(valueOf(m, "eventstore_consumer_lag_events", { kind: "subscription", name: "ledger" })).toBeUndefined();
    expect(valueOf(m, "eventstore_appends_total")).toBeGreaterThan(0);
  } finally {
    await admin`alter table eventstore.subscription_checkpoints_away rename to subscription_checkpoints`;
  }
});

test("a lost LISTEN connection is counted as a reconnect, and wakes the feed", async () => {
  await admin`select pg_terminate_backend(pid) from pg_stat_activity where datname = ${db.name} and query ilike 'listen%'`;
  const m = await until(async () => {
    const now = await metricsOf(a);
    return valueOf(now, "eventstore_feed_listen_reconnects_total") === 1 && now;
  }, "A's LISTEN connection back");
  expect(valueOf(m, "eventstore_feed_wakeups_total", { cause: "reconnect" })).toBe(2);
});

test("a pool's connections in use and operations waiting; statements ended by the statement timeout", async () => {
  // C's one write connection: its append waits for the log's row, locked here, and a GetStream
  // queues behind it. The append's statement passes C's timeout of one second.
  const locked = admin.begin(async (tx) => {
    await tx`select position from eventstore.log for update`;
    const append = clientFor(c).append({ stream: "acct-2", events: events(1) }).then(() => "OK", (e) => Code[ConnectError.from(e).code]);
    const getStream = clientFor(c).getStream({ stream: "acct-1" }).then(() => "OK", (e) => Code[ConnectError.from(e).code]);
    const m = await until(async () => {
      const now = await metricsOf(c);
      return valueOf(now, "eventstore_db_pool_waiting", { pool: "write" })! >= 1 && now;
    }, "an operation waiting for C's write connection");
    expect(valueOf(m, "eventstore_db_pool_connections", { pool: "write" })).toBe(1);
    expect(valueOf(m, "eventstore_db_pool_in_use", { pool: "write" })).toBe(1);
    return Promise.all([append, getStream]);
  });
  expect(await locked).toEqual(["ResourceExhausted", "OK"]);
  const m = await metricsOf(c);
  expect(valueOf(m, "eventstore_db_statement_timeouts_total")).toBe(1);
  expect(valueOf(m, "eventstore_db_pool_in_use", { pool: "write" })).toBe(0);
  expect(valueOf(m, "eventstore_db_pool_waiting", { pool: "write" })).toBe(0);
  expect(valueOf(m, "eventstore_rpc_calls_total", { method: APPEND, code: "RESOURCE_EXHAUSTED" })).toBe(1);
});

test("the process: event-loop lag, heap and resident memory", async () => {
  const m = await metricsOf(a);
  expect(valueOf(m, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
  expect(valueOf(m, "nodejs_heap_size_used_bytes")).toBeGreaterThan(1024 * 1024);
  expect(valueOf(m, "process_resident_memory_bytes")).toBeGreaterThan(10 * 1024 * 1024);
});

function clientFor(server: TestServer) {
  return createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
}

/** The grpc-status (or HTTP status, without one) of a gRPC call to a method no service has. */
function unknownMethodStatus(port: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const req = session.request({ ":method": "POST", ":path": "/nope.v1.Nope/Nope", "content-type": "application/grpc", te: "trailers" });
    let status: string | undefined;
    req.on("response", (headers) => (status ??= (headers["grpc-status"] as string | undefined) ?? `http ${headers[":status"]}`));
    req.on("trailers", (trailers) => (status = trailers["grpc-status"] as string | undefined));
    req.on("close", () => {
      session.close();
      resolve(status);
    });
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
}

import { randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import postgres from "postgres";
import { EventStoreService, type FilterSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { adminUrl } from "../support/postgres-url";
import { startThrowawayCluster, type Cluster } from "../support/throwaway-cluster";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// Faults in the middle of a run, with writers appending and subscribers following the log.
// Subscribers here are what a careful client does: on any error, reconnect (to any server) and
// resume after the position of the last event or checkpoint received. Whatever breaks, each
// must end up with every committed event of its selection exactly once, in log order.
//
// The truth is a final ReadAll of the database. An append that answered an error during a fault
// may still have committed, so events of failed appends may be in it; every acknowledged event
// must be, and nothing else may.

type EventStoreClient = Client<typeof EventStoreService>;
type FilterInit = MessageInitShape<typeof FilterSchema>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const clients = new Map<string, EventStoreClient>();
function clientFor(url: string): EventStoreClient {
  let c = clients.get(url);
  if (!c) clients.set(url, (c = createClient(EventStoreService, createGrpcTransport({ baseUrl: url }))));
  return c;
}

// ---------------------------------------------------------------------------------------------
// Writers and their ledger

interface Ack {
  position: bigint;
  ackedAt: number;
}

interface Ledger {
  acked: Map<string, Ack>;
  /** Ids of events whose append answered an error: they may or may not have committed. */
  unsure: Set<string>;
}

const createLedger = (): Ledger => ({ acked: new Map(), unsure: new Set() });

interface WriterReport {
  name: string;
  /** Server index of every acknowledged append, with its time. */
  appends: { server: number; at: number }[];
  errors: { server: number; code: string; at: number }[];
}

/**
 * Appends 1-3 events at a time to streams of its own category (`name`), through `urls[first]`;
 * on an error it moves to the next server. Runs until `until` aborts.
 */
async function runWriter(name: string, urls: string[], first: number, ledger: Ledger, until: AbortSignal): Promise<WriterReport> {
  const report: WriterReport = { name, appends: [], errors: [] };
  let at = first;
  for (let k = 0; !until.aborted; k++) {
    const ids = Array.from({ length: 1 + (k % 3) }, () => randomUUID());
    try {
      const r = await clientFor(urls[at]).append(
        {
          stream: `${name}-${k % 4}`,
          events: ids.map((id) => ({ id, type: "Ticked", payload: { case: "data" as const, value: new TextEncoder().encode(`{"k":${k}}`) } })),
        },
        { timeoutMs: 10_000 },
      );
      const now = Date.now();
      r.positions.forEach((position, i) => ledger.acked.set(ids[i], { position, ackedAt: now }));
      report.appends.push({ server: at, at: now });
      await sleep(15);
    } catch (e) {
      for (const id of ids) ledger.unsure.add(id);
      report.errors.push({ server: at, code: Code[ConnectError.from(e).code], at: Date.now() });
      at = (at + 1) % urls.length;
      await sleep(100);
    }
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Resilient subscribers

interface Subscriber {
  name: string;
  filter?: FilterInit;
  /** Every event received, in arrival order, across every call. */
  received: { id: string; position: bigint; at: number }[];
  /** The position to resume after: the last event's or checkpoint's. */
  last: bigint;
  /** Server index of every Subscribe call made. */
  calls: number[];
  /** How each call but the last ended. */
  failures: { server: number; code: string; message: string; at: number }[];
  /** Events at or below the resume position, checkpoints going backwards. */
  violations: string[];
  done: Promise<void>;
}

function startSubscriber(name: string, urls: string[], first: number, until: AbortSignal, filter?: FilterInit): Subscriber {
  const s: Subscriber = { name, filter, received: [], last: 0n, calls: [], failures: [], violations: [], done: Promise.resolve() };
  s.done = (async () => {
    let at = first;
    while (!until.aborted) {
      s.calls.push(at);
      try {
        for await (const m of clientFor(urls[at]).subscribe({ filter, start: { case: "afterPosition", value: s.last } }, { signal: until })) {
          if (m.message.case === "events") {
            for (const { id, position } of m.message.value.events) {
              if (position <= s.last) s.violations.push(`event ${id} at ${position} after ${s.last}`);
              s.received.push({ id, position, at: Date.now() });
              s.last = position;
            }
          } else if (m.message.case === "checkpoint") {
            if (m.message.value.position < s.last) s.violations.push(`checkpoint ${m.message.value.position} after ${s.last}`);
            else s.last = m.message.value.position;
          }
        }
        if (until.aborted) break;
        s.failures.push({ server: at, code: "ended without an error", message: "", at: Date.now() });
      } catch (e) {
        if (until.aborted) break;
        const err = ConnectError.from(e);
        s.failures.push({ server: at, code: Code[err.code], message: err.rawMessage, at: Date.now() });
        at = (at + 1) % urls.length;
        await sleep(100);
      }
    }
  })();
  return s;
}

// ---------------------------------------------------------------------------------------------
// The end of a run: the truth, and the checks against it

interface Truth {
  events: { id: string; position: bigint; stream: string }[];
}

async function readTruth(url: string): Promise<Truth> {
  const events: Truth["events"] = [];
  for await (const r of clientFor(url).readAll({}, { timeoutMs: 20_000 })) {
    for (const e of r.events) events.push({ id: e.id, position: e.position, stream: e.stream });
  }
  return { events };
}

/** The category filter is the only one these tests use. */
function selected(truth: Truth, filter?: FilterInit): Truth["events"] {
  const streams = filter?.streams;
  if (!streams) return truth.events;
  if (streams.case !== "category") throw new Error("only category filters here");
  return truth.events.filter((e) => e.stream.split("-")[0] === streams.value);
}

/** Stops writers, lets subscribers reach the end of the log, then stops them and reads the truth. */
async function finish(
  writers: { stop: AbortController; reports: Promise<WriterReport[]> },
  subscribers: { stop: AbortController; list: Subscriber[] },
  truthFrom: string,
): Promise<{ truth: Truth; writerReports: WriterReport[] }> {
  writers.stop.abort();
  const writerReports = await writers.reports;
  const truth = await readTruth(truthFrom);
  const deadline = Date.now() + 15_000;
  const target = (s: Subscriber) => selected(truth, s.filter).at(-1)?.position ?? 0n;
  while (Date.now() < deadline && subscribers.list.some((s) => s.last < target(s))) await sleep(50);
  // Room for a stray duplicate to show itself.
  await sleep(300);
  subscribers.stop.abort();
  await Promise.all(subscribers.list.map((s) => s.done));
  return { truth, writerReports };
}

function expectTruthMatchesLedger(truth: Truth, ledger: Ledger) {
  const inLog = new Map(truth.events.map((e) => [e.id, e.position]));
  const ascending = truth.events.every((e, i) => i === 0 || e.position > truth.events[i - 1].position);
  const lostAcks = [...ledger.acked].filter(([id, a]) => inLog.get(id) !== a.position).map(([id]) => id);
  const unasked = truth.events.filter((e) => !ledger.acked.has(e.id) && !ledger.unsure.has(e.id)).map((e) => e.id);
  expect({ ascending, lostAcks: lostAcks.slice(0, 5), unasked: unasked.slice(0, 5) }).toEqual({ ascending: true, lostAcks: [], unasked: [] });
  expect(ledger.acked.size).toBeGreaterThan(100);
}

function expectExactlyOnceInOrder(truth: Truth, s: Subscriber) {
  const expected = selected(truth, s.filter).map((e) => e.id);
  const got = s.received.map((e) => e.id);
  const want = new Set(expected);
  const seen = new Set<string>();
  const duplicated = got.filter((id) => seen.size === seen.add(id).size);
  const summary = {
    subscriber: s.name,
    violations: s.violations.slice(0, 5),
    missing: expected.filter((id) => !seen.has(id)).slice(0, 5),
    unexpected: got.filter((id) => !want.has(id)).slice(0, 5),
    duplicated: duplicated.slice(0, 5),
  };
  expect(summary).toEqual({ subscriber: s.name, violations: [], missing: [], unexpected: [], duplicated: [] });
  expect(got).toEqual(expected);
}

/**
 * Every event acknowledged at or after `from` reached the subscriber within `ms` of its
 * acknowledgement (and there were such events).
 */
function expectLiveWithin(ms: number, s: Subscriber, ledger: Ledger, run: string, from = 0) {
  let count = 0;
  let worst = { ms: Number.NEGATIVE_INFINITY, id: "" };
  for (const r of s.received) {
    const ack = ledger.acked.get(r.id);
    if (!ack || ack.ackedAt < from) continue;
    count++;
    if (r.at - ack.ackedAt > worst.ms) worst = { ms: r.at - ack.ackedAt, id: r.id };
  }
  const verdict = count > 0 && worst.ms < ms ? "live" : `${s.name}: worst ${worst.ms} ms (event ${worst.id}) over ${count} events\n${run}`;
  expect(verdict).toBe("live");
}

function describeRun(subs: Subscriber[], writers: WriterReport[]): string {
  const lines = subs.map((s) => `${s.name}: ${s.received.length} events, calls on ${JSON.stringify(s.calls)}, failures ${JSON.stringify(s.failures)}`);
  lines.push(...writers.map((w) => `${w.name}: ${w.appends.length} appends, errors ${JSON.stringify(w.errors.map((e) => `${e.server}:${e.code}`))}`));
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL helpers

/** The LISTEN connections of one application (set with ?application_name= in the server's URL). */
async function listenBackends(admin: postgres.Sql, database: string, application: string): Promise<number[]> {
  const rows = await admin<{ pid: number }[]>`
    select pid from pg_stat_activity
     where datname = ${database} and application_name = ${application} and query ilike 'listen%'`;
  return rows.map((r) => r.pid);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

function withApplicationName(url: string, name: string): string {
  const u = new URL(url);
  u.searchParams.set("application_name", name);
  return u.toString();
}

// ---------------------------------------------------------------------------------------------

/** Writers and subscribers stop when their test ends, even when it ends by a failure. */
const stoppers = new Set<AbortController>();
function stopper(): AbortController {
  const c = new AbortController();
  stoppers.add(c);
  return c;
}
afterEach(() => {
  for (const c of stoppers) c.abort();
  stoppers.clear();
});

const started: ServerProcess[] = [];
async function startServers(count: number, env: Record<string, string>): Promise<ServerProcess[]> {
  const servers = await Promise.all(Array.from({ length: count }, () => startServerProcess(env)));
  started.push(...servers);
  return servers;
}

afterAll(async () => {
  await Promise.all(started.map((s) => s.stop("SIGKILL")));
});

describe("when the LISTEN connection is killed, again and again, during a run", () => {
  const LISTENER_APP = `faults-listener-${randomUUID().slice(0, 8)}`;
  let db: TestDatabase;
  let admin: postgres.Sql;
  let listening: ServerProcess;
  let writing: ServerProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
    admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
    // Subscribers' server: its poll and probe are too slow to hide a dead LISTEN connection.
    // Writers use another server, so that only notifications wake this one.
    [listening, writing] = await Promise.all([
      startServers(1, {
        DATABASE_URL: withApplicationName(db.url, LISTENER_APP),
        POLL_INTERVAL_MS: "60000",
        LISTEN_PROBE_INTERVAL_MS: "60000",
        CHECKPOINT_INTERVAL_MS: "200",
      }).then(([s]) => s),
      startServers(1, { DATABASE_URL: db.url }).then(([s]) => s),
    ]);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([listening?.stop(), writing?.stop()]);
    await admin?.end();
    await db?.drop();
  }, 30_000);

  it("subscribers keep their calls, miss and repeat nothing, and live delivery stays under 2 s", async () => {
    const ledger = createLedger();
    const subStop = stopper();
    const subs = [
      ...Array.from({ length: 3 }, (_, i) => startSubscriber(`all-${i}`, [listening.url], 0, subStop.signal)),
      startSubscriber("w0-only", [listening.url], 0, subStop.signal, { streams: { case: "category", value: "w0" } }),
    ];
    await sleep(300);
    const writerStop = stopper();
    const reports = Promise.all([0, 1].map((i) => runWriter(`w${i}`, [writing.url], 0, ledger, writerStop.signal)));

    expect(await listenBackends(admin, db.name, LISTENER_APP)).toHaveLength(1);
    const killed: number[] = [];
    const killListener = async () => {
      const rows = await admin<{ pid: number; terminated: boolean }[]>`
        select pid, pg_terminate_backend(pid) as terminated from pg_stat_activity
         where datname = ${db.name} and application_name = ${LISTENER_APP} and query ilike 'listen%'`;
      expect(rows.map((r) => r.terminated)).toEqual([true]);
      killed.push(rows[0].pid);
      return rows[0].pid;
    };
    const relistened = async () => {
      const at = Date.now();
      await waitFor(
        "a new LISTEN connection",
        async () => ((await listenBackends(admin, db.name, LISTENER_APP)).some((p) => !killed.includes(p)) ? true : undefined),
        5000,
      );
      return Date.now() - at;
    };
    const relisten: number[] = [];
    for (let round = 0; round < 3; round++) {
      await sleep(1200);
      await killListener();
      relisten.push(await relistened());
    }
    await sleep(1000);

    // Last, one commit while the listener is down, and none after it: no notification will ever
    // announce it, so only the re-read that follows the re-LISTEN can deliver it.
    writerStop.abort();
    await reports;
    const head = [...ledger.acked.values()].reduce((max, a) => (a.position > max ? a.position : max), 0n);
    await waitFor("subscribers at the head", async () => (subs.every((s) => s.last >= head) ? true : undefined), 10_000);
    const quietId = randomUUID();
    // New connections to the database are refused for a moment, so the listener cannot come
    // back before the commit; the servers' pools keep the connections they have.
    await admin.unsafe(`alter database "${db.name}" allow_connections false`);
    try {
      const pid = await killListener();
      await waitFor("the killed LISTEN backend to go", async () => ((await admin`select 1 from pg_stat_activity where pid = ${pid}`).length === 0 ? true : undefined), 5000);
      const r = await clientFor(writing.url).append({
        stream: "w0-quiet",
        events: [{ id: quietId, type: "Ticked", payload: { case: "data", value: new TextEncoder().encode("{}") } }],
      });
      ledger.acked.set(quietId, { position: r.positions[0], ackedAt: Date.now() });
      await sleep(500);
    } finally {
      await admin.unsafe(`alter database "${db.name}" allow_connections true`);
    }
    relisten.push(await relistened());
    await waitFor("the quiet commit delivered", async () => (subs.every((s) => s.received.some((e) => e.id === quietId)) ? true : undefined), 3000).catch(
      () => undefined,
    );

    const { truth, writerReports } = await finish({ stop: writerStop, reports }, { stop: subStop, list: subs }, writing.url);
    const run = describeRun(subs, writerReports);

    expectTruthMatchesLedger(truth, ledger);
    expect(writerReports.flatMap((w) => w.errors)).toEqual([]);
    for (const s of subs) {
      expectExactlyOnceInOrder(truth, s);
      // Not one call failed: the feed re-listened and re-read by itself.
      expect({ subscriber: s.name, calls: s.calls.length, failures: s.failures }).toEqual({ subscriber: s.name, calls: 1, failures: [] });
      expectLiveWithin(2000, s, ledger, run);
    }
    // The old connections are gone, and no reconnect left a second one behind.
    const after = await listenBackends(admin, db.name, LISTENER_APP);
    expect(after).toHaveLength(1);
    expect(killed).toHaveLength(4);
    expect(killed).not.toContain(after[0]);
    expect(relisten.every((ms) => ms < 3000)).toBe(true);
  }, 45_000);
});

describe("when PostgreSQL restarts during a run", () => {
  // Writers use one server. Subscribers use two others: one whose feed polls often, so that it
  // reads during the outage, fails its subscribers and makes them resume; and one that only
  // notifications can wake in time, to prove its LISTEN connection comes back.
  const LISTENING_APP = "faults-listening";
  const POLLING_APP = "faults-polling";
  const WRITING_APP = "faults-writing";
  let cluster: Cluster | undefined;
  let admin: postgres.Sql;
  let listening: ServerProcess;
  let polling: ServerProcess;
  let writing: ServerProcess;

  beforeAll(async () => {
    cluster = await startThrowawayCluster();
    admin = postgres(cluster.url, { max: 1, onnotice: () => {}, connect_timeout: 5 });
    // One server migrates first: concurrent first migrations are not what this test is about.
    [listening] = await startServers(1, {
      DATABASE_URL: withApplicationName(cluster.url, LISTENING_APP),
      POLL_INTERVAL_MS: "60000",
      LISTEN_PROBE_INTERVAL_MS: "60000",
      CHECKPOINT_INTERVAL_MS: "200",
    });
    [polling, writing] = await Promise.all([
      startServers(1, { DATABASE_URL: withApplicationName(cluster.url, POLLING_APP), POLL_INTERVAL_MS: "100", CHECKPOINT_INTERVAL_MS: "200" }).then(([s]) => s),
      startServers(1, { DATABASE_URL: withApplicationName(cluster.url, WRITING_APP) }).then(([s]) => s),
    ]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([listening?.stop("SIGKILL"), polling?.stop("SIGKILL"), writing?.stop("SIGKILL")]);
    await admin?.end({ timeout: 1 });
    await cluster?.destroy();
  }, 30_000);

  it("subscribers resume where they were: nothing missed, nothing twice, live again once it is back", async () => {
    const ledger = createLedger();
    const subStop = stopper();
    const subs = [
      ...[0, 1].map((i) => startSubscriber(`listening-${i}`, [listening.url], 0, subStop.signal)),
      startSubscriber("listening-w1", [listening.url], 0, subStop.signal, { streams: { case: "category", value: "w1" } }),
      ...[0, 1].map((i) => startSubscriber(`polling-${i}`, [polling.url], 0, subStop.signal)),
      startSubscriber("polling-w1", [polling.url], 0, subStop.signal, { streams: { case: "category", value: "w1" } }),
    ];
    await sleep(300);
    const writerStop = stopper();
    const reports = Promise.all([0, 1].map((i) => runWriter(`w${i}`, [writing.url], 0, ledger, writerStop.signal)));

    await sleep(2000);
    const down = Date.now();
    await cluster!.stop();
    // One more subscriber arrives while the database is down.
    subs.push(startSubscriber("latecomer", [listening.url, polling.url], 0, subStop.signal));
    await sleep(1000);
    await cluster!.start();
    const up = Date.now();
    const listeningAgain = await waitFor(
      "the LISTEN connection of the notification-only server, after the restart",
      async () => ((await listenBackends(admin, "postgres", LISTENING_APP).catch(() => [])).length > 0 ? Date.now() : undefined),
      15_000,
    );
    await sleep(Math.max(2500, up + 5000 - Date.now()));

    const { truth, writerReports } = await finish({ stop: writerStop, reports }, { stop: subStop, list: subs }, writing.url);
    const run = describeRun(subs, writerReports);

    expectTruthMatchesLedger(truth, ledger);
    // The outage was real: writes failed during it, and succeeded before and after it.
    expect(writerReports.every((w) => w.errors.length > 0)).toBe(true);
    expect(writerReports.every((w) => w.appends.some((a) => a.at < down) && w.appends.some((a) => a.at > up))).toBe(true);
    for (const s of subs) expectExactlyOnceInOrder(truth, s);
    // The polling server's feed read during the outage: its subscribers had to resume.
    for (const s of subs.filter((s) => s.name.startsWith("polling") || s.name === "latecomer")) {
      expect({ subscriber: s.name, resumed: s.failures.length > 0 && s.failures.every((f) => f.code === "Unavailable"), run }).toMatchObject({ resumed: true });
    }
    // Once the server listens again, events arrive live; a LISTEN connection that did not come
    // back would leave them for the 60 s poll.
    for (const s of subs.filter((s) => s.name.startsWith("listening"))) expectLiveWithin(2000, s, ledger, run, listeningAgain + 500);
    expect(listeningAgain - up).toBeLessThan(3000);
    // Every server serves normally soon after the database is back: appends succeed, and every
    // subscriber, wherever it resumed, is live again.
    const firstAppendsAfter = writerReports.map((w) => w.appends.find((a) => a.at > up)!.at - up);
    expect({ firstAppendsAfter, run }).toMatchObject({ firstAppendsAfter: firstAppendsAfter.map((ms) => (ms < 3000 ? ms : "under 3000")) });
    for (const s of subs) expectLiveWithin(2000, s, ledger, run, up + 3000);
    for (const app of [LISTENING_APP, POLLING_APP, WRITING_APP]) {
      expect({ app, listening: (await listenBackends(admin, "postgres", app)).length }).toEqual({ app, listening: 1 });
    }
  }, 60_000);
});

describe("when one of three servers is killed during a run", () => {
  let db: TestDatabase;
  let servers: ServerProcess[];

  beforeAll(async () => {
    db = await createTestDatabase();
    servers = await startServers(3, { DATABASE_URL: db.url, CHECKPOINT_INTERVAL_MS: "200" });
  }, 30_000);

  afterAll(async () => {
    await Promise.all(servers?.map((s) => s.stop()) ?? []);
    await db?.drop();
  }, 30_000);

  it("its subscribers and writers move to the others; nothing missed, nothing twice", async () => {
    const urls = servers.map((s) => s.url);
    const VICTIM = 1;
    const ledger = createLedger();
    const subStop = stopper();
    const subs = [
      ...Array.from({ length: 6 }, (_, i) => startSubscriber(`all-${i}`, urls, i % 3, subStop.signal)),
      startSubscriber("w1-only", urls, VICTIM, subStop.signal, { streams: { case: "category", value: "w1" } }),
    ];
    await sleep(300);
    const writerStop = stopper();
    const reports = Promise.all([0, 1, 2].map((i) => runWriter(`w${i}`, urls, i, ledger, writerStop.signal)));

    await sleep(2500);
    const killedAt = Date.now();
    await servers[VICTIM].stop("SIGKILL");
    await sleep(3000);

    const { truth, writerReports } = await finish({ stop: writerStop, reports }, { stop: subStop, list: subs }, urls[0]);
    const run = describeRun(subs, writerReports);

    expectTruthMatchesLedger(truth, ledger);
    for (const s of subs) expectExactlyOnceInOrder(truth, s);
    for (const s of subs) {
      if (s.calls[0] === VICTIM) {
        // It lost its call, and carried on elsewhere.
        expect({ subscriber: s.name, failed: s.failures.length > 0, now: s.calls.at(-1) !== VICTIM, run }).toMatchObject({ failed: true, now: true });
      } else {
        // The survivors' subscribers did not notice.
        expect({ subscriber: s.name, failures: s.failures, run }).toMatchObject({ failures: [] });
      }
    }
    const victimWriter = writerReports[VICTIM];
    expect(victimWriter.appends.some((a) => a.server === VICTIM && a.at < killedAt)).toBe(true);
    expect(victimWriter.appends.some((a) => a.server !== VICTIM && a.at > killedAt)).toBe(true);
    expect(writerReports.filter((w, i) => i !== VICTIM).every((w) => w.errors.length === 0)).toBe(true);
  }, 45_000);
});

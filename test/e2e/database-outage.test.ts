import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService, ExpectedState, ProposedEventSchema, type ProposedEvent } from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { withoutSettings } from "../support/server-env";

const MAIN = join(__dirname, "../../dist/src/server/main.js");

/** A TCP proxy to PostgreSQL that the test can cut (every connection dropped, none accepted) and restore. */
interface Proxy {
  port: number;
  up(): Promise<void>;
  down(): Promise<void>;
}

async function createProxy(target: { host: string; port: number }): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const proxy: Proxy = {
    get port() {
      return port;
    },
    async up() {
      if (server) return;
      const s = createServer((client) => {
        const upstream = connect(target.port, target.host);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.once("close", () => sockets.delete(socket));
          socket.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, "127.0.0.1", () => resolve());
      });
      port = (s.address() as AddressInfo).port;
      server = s;
    },
    async down() {
      const s = server;
      server = undefined;
      if (!s) return;
      const closed = new Promise((resolve) => s.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
  await proxy.up();
  return proxy;
}

function viaProxy(url: string, proxy: Proxy): string {
  const u = new URL(url);
  u.hostname = "127.0.0.1";
  u.port = String(proxy.port);
  return u.toString();
}

function events(count: number, padding = 0): ProposedEvent[] {
  return Array.from({ length: count }, (_, i) =>
    create(ProposedEventSchema, {
      id: randomUUID(),
      type: "Noted",
      payload: { case: "data", value: new TextEncoder().encode(`{"n":${i},"pad":"${"x".repeat(padding)}"}`) },
    }),
  );
}

async function failure(work: Promise<unknown>): Promise<ConnectError> {
  try {
    await work;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const m of stream) all.push(m);
  return all;
}

/** UNAVAILABLE with reason UNAVAILABLE, and nothing of the database's own words. */
function expectCleanUnavailable(e: ConnectError) {
  expect(Code[e.code]).toBe("Unavailable");
  expect(e.findDetails(ErrorInfoSchema).map((d) => d.reason)).toEqual(["UNAVAILABLE"]);
  const told = [e.rawMessage, ...e.findDetails(ErrorInfoSchema).flatMap((d) => Object.entries(d.metadata).flat())].join("\n");
  expect(told).not.toMatch(/select|insert|from |eventstore\.|\bat |\.ts:|\.js:|ECONN|CONNECTION_|127\.0\.0\.1|postgres/i);
}

async function eventually<T>(work: () => Promise<T>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await work();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

let db: TestDatabase;
let proxy: Proxy;
const running = new Set<ChildProcess>();
const servers: TestServer[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const target = new URL(db.url);
  proxy = await createProxy({ host: target.hostname, port: Number(target.port || 5432) });
});

afterAll(async () => {
  for (const child of running) child.kill("SIGKILL");
  await proxy?.up().catch(() => {});
  await Promise.all(servers.map((s) => s.stop()));
  await proxy?.down();
  await db?.drop();
});

describe("when the database goes away under a running server", () => {
  let server: TestServer;
  let client: Client<typeof EventStoreService>;
  const stream = `outage-${randomUUID()}`;

  beforeAll(async () => {
    await proxy.up();
    server = await startTestServer({ kind: "postgres", url: viaProxy(db.url, proxy) });
    servers.push(server);
    client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
  });

  test("calls answer UNAVAILABLE without SQL or stack, and succeed again once it is back, without a restart", async () => {
    const before = await client.append({ stream, events: events(3), expected: { case: "expectedState", value: ExpectedState.NO_STREAM } });
    expect(before.revision).toBe(2n);

    await proxy.down();

    const append = await failure(client.append({ stream, events: events(2), expected: { case: "expectedRevision", value: 2n } }));
    expectCleanUnavailable(append);
    expectCleanUnavailable(await failure(drain(client.readStream({ stream }))));
    expectCleanUnavailable(await failure(drain(client.readAll({}))));
    expectCleanUnavailable(await failure(client.getStream({ stream })));
    expectCleanUnavailable(await failure(client.listStreams({})));
    // Still down a moment later: the pool does not get stuck in some other state.
    await new Promise((r) => setTimeout(r, 300));
    expectCleanUnavailable(await failure(client.append({ stream, events: events(2), expected: { case: "expectedRevision", value: 2n } })));

    await proxy.up();
    const restoredAt = Date.now();
    const after = await eventually(
      () => client.append({ stream, events: events(2), expected: { case: "expectedRevision", value: 2n } }),
      10_000,
    );
    expect(Date.now() - restoredAt).toBeLessThan(5000);
    // The appends refused during the outage wrote nothing: the stream went on from revision 2.
    expect(after.revision).toBe(4n);
    expect(after.positions[0]).toBe(before.positions[2] + 1n);
    const read = (await drain(client.readStream({ stream }))).flatMap((m) => m.events);
    expect(read.map((e) => e.revision)).toEqual([0n, 1n, 2n, 3n, 4n]);
    expect(read.map((e) => e.id)).toEqual([...before.eventIds, ...after.eventIds]);
  });

  test("a cut during a stream's read ends it UNAVAILABLE, and a new read succeeds once it is back", async () => {
    const big = `outage-big-${randomUUID()}`;
    // 5 MB: far more than the connection's buffers hold while the reader waits.
    await client.append({ stream: big, events: events(5000, 1000) });
    const reader = client.readStream({ stream: big })[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(first.value!.events.length).toBeGreaterThan(0);
    await proxy.down();
    const cut = await failure(
      (async () => {
        for (let r = await reader.next(); !r.done; r = await reader.next());
      })(),
    );
    expectCleanUnavailable(cut);
    await proxy.up();
    const all = await eventually(async () => (await drain(client.readStream({ stream: big }))).flatMap((m) => m.events), 10_000);
    expect(all.map((e) => e.revision)).toEqual(Array.from({ length: 5000 }, (_, i) => BigInt(i)));
  });
});

describe("when the database is down as the server starts", () => {
  test("it logs that it is retrying, and becomes ready once the database comes up", async () => {
    await proxy.down();
    const base = withoutSettings();
    const child = spawn(process.execPath, [MAIN, "serve"], {
      env: { ...base, HOST: "127.0.0.1", PORT: "0", DATABASE_URL: viaProxy(db.url, proxy) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    const logs: Record<string, unknown>[] = [];
    let output = "";
    let pending = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      for (const line of lines) logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    const waitFor = (predicate: () => boolean, what: string) =>
      eventually(async () => {
        if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode}:\n${output}`);
        if (!predicate()) throw new Error(`${what} not logged:\n${output}`);
      }, 20_000);

    await waitFor(() => logs.filter((l) => l.msg === "database unavailable; retrying").length >= 2, "two retries");
    expect(logs.find((l) => l.msg === "ready")).toBeUndefined();
    const retry = logs.find((l) => l.msg === "database unavailable; retrying")!;
    expect(retry).toMatchObject({ level: "warn", attempt: 1 });

    await proxy.up();
    await waitFor(() => logs.some((l) => l.msg === "ready"), "ready");
    const { port } = logs.find((l) => l.msg === "ready") as { port: number };
    const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
    const stream = `late-${randomUUID()}`;
    expect((await client.append({ stream, events: events(1) })).revision).toBe(0n);

    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});

import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import {
  EventStoreService,
  ExpectedState,
  ProposedEventSchema,
  type RecordedEvent,
} from "../../gen/eventstore/v1/eventstore_pb";
import { withoutSettings } from "../support/server-env";

const MAIN = join(__dirname, "../../dist/src/server/main.js");

interface ServerProcess {
  child: ChildProcess;
  port: number;
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/** `eventstore serve` with no DATABASE_URL: the embedded database in `dataDir`. */
async function startEmbedded(dataDir: string): Promise<ServerProcess> {
  const base = withoutSettings();
  const child = spawn(process.execPath, [MAIN, "serve"], {
    // TMPDIR: the embedded database's socket directory, which a killed process leaves behind.
    env: { ...base, HOST: "127.0.0.1", PORT: "0", DATA_DIR: dataDir, TMPDIR: scratch },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let out = "";
  let pending = "";
  const logs: Record<string, unknown>[] = [];
  let onLog = () => {};
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    const lines = (pending + chunk).split("\n");
    pending = lines.pop()!;
    for (const line of lines) logs.push(JSON.parse(line) as Record<string, unknown>);
    onLog();
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 30 s:\n${out}`)), 30_000);
    onLog = () => {
      const ready = logs.find((l) => l.msg === "ready");
      if (ready) {
        clearTimeout(timer);
        resolve(ready.port as number);
      }
    };
    void exited.then(({ code }) => reject(new Error(`exited with ${code} before ready:\n${out}`)));
  });
  return { child, port, logs, exited };
}

async function stopGracefully(server: ServerProcess) {
  server.child.kill("SIGTERM");
  expect(await server.exited).toEqual({ code: 0, signal: null });
  expect(server.logs.map((l) => l.msg).pop()).toBe("stopped");
}

function grpcClient(port: number): Client<typeof EventStoreService> {
  return createClient(EventStoreService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
}

function connectClient(port: number): Client<typeof EventStoreService> {
  return createClient(EventStoreService, createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1" }));
}

async function readStream(client: Client<typeof EventStoreService>, stream: string): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const m of client.readStream({ stream })) events.push(...m.events);
  return events;
}

async function readAll(client: Client<typeof EventStoreService>): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for await (const m of client.readAll({})) events.push(...m.events);
  return events;
}

const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
// Not UTF-8, not JSON: only byte-for-byte storage brings these back.
const BINARY = new Uint8Array([0x00, 0xff, 0xfe, 0x80, 0x0a, 0x00, 0xc3, 0x28]);

let scratch: string;
let dataDir: string;

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), "eventstore-embedded-"));
  dataDir = join(scratch, "data");
});

afterAll(async () => {
  for (const child of running) child.kill("SIGKILL");
  await new Promise((r) => setTimeout(r, 100));
  rmSync(scratch, { recursive: true, force: true });
});

test("events appended over Connect and gRPC survive a restart on the same data directory, and appends go on from there", async () => {
  const orders = "order-1";
  const invoices = "invoice-1";
  const first = await startEmbedded(dataDir);

  const overHttp1 = await connectClient(first.port).append({
    stream: orders,
    expected: { case: "expectedState", value: ExpectedState.NO_STREAM },
    events: [
      create(ProposedEventSchema, { id: randomUUID(), type: "OrderPlaced", payload: { case: "data", value: json({ total: 12.5, items: ["a", "b"] }) } }),
      create(ProposedEventSchema, {
        id: randomUUID(),
        type: "Attachment",
        contentType: "application/octet-stream",
        payload: { case: "data", value: BINARY },
        metadata: { fields: { user: { kind: { case: "stringValue", value: "ada" } } } },
      }),
      create(ProposedEventSchema, { id: randomUUID(), type: "OrderPaid", payload: { case: "data", value: json({ at: "2024-01-01" }) } }),
    ],
  });
  expect(overHttp1.revision).toBe(2n);

  const grpc = grpcClient(first.port);
  const overHttp2 = await grpc.multiStreamAppend({
    appends: [
      {
        stream: orders,
        expected: { case: "expectedRevision", value: 2n },
        events: [create(ProposedEventSchema, { type: "OrderShipped", payload: { case: "data", value: json({ carrier: "ups" }) } })],
      },
      { stream: invoices, events: [create(ProposedEventSchema, { type: "InvoiceIssued", payload: { case: "data", value: json({ n: 1 }) } })] },
    ],
  });
  expect(overHttp2.results.map((r) => r.revision)).toEqual([3n, 0n]);

  const before = { orders: await readStream(grpc, orders), invoices: await readStream(grpc, invoices), all: await readAll(grpc) };
  expect(before.orders.map((e) => e.revision)).toEqual([0n, 1n, 2n, 3n]);
  expect(before.orders.map((e) => e.id)).toEqual([...overHttp1.eventIds, overHttp2.results[0].eventIds[0]]);
  expect(before.orders[1].payload).toEqual({ case: "data", value: BINARY });
  expect(before.all).toHaveLength(5);

  await stopGracefully(first);
  expect(readdirSync(dataDir).length).toBeGreaterThan(0);

  const second = await startEmbedded(dataDir);
  try {
    const again = grpcClient(second.port);
    // Identical to the last byte: ids, types, data, metadata, revisions, positions, times.
    expect(await readStream(again, orders)).toEqual(before.orders);
    expect(await readStream(again, invoices)).toEqual(before.invoices);
    expect(await readAll(again)).toEqual(before.all);
    expect(await readStream(connectClient(second.port), orders)).toEqual(before.orders);

    // The stream's revision survived: a stale expected revision is refused...
    const stale = await connectClient(second.port)
      .append({ stream: orders, expected: { case: "expectedRevision", value: 2n }, events: [create(ProposedEventSchema, { type: "Late", payload: { case: "data", value: json({}) } })] })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    expect(stale?.code).toBe(Code.Aborted);

    // ...and the next append continues at the next revision and after the last position.
    const next = await again.append({
      stream: orders,
      expected: { case: "expectedRevision", value: 3n },
      events: [create(ProposedEventSchema, { type: "OrderDelivered", payload: { case: "data", value: json({}) } })],
    });
    expect(next.revision).toBe(4n);
    const lastPosition = before.all[before.all.length - 1].position;
    expect(next.positions[0]).toBeGreaterThan(lastPosition);
    expect((await readAll(again)).map((e) => e.position)).toEqual([...before.all.map((e) => e.position), next.positions[0]]);

    // Event ids survived too: retrying the very first append answers its original result.
    const retry = await again.append({
      stream: orders,
      expected: { case: "expectedState", value: ExpectedState.NO_STREAM },
      events: before.orders.slice(0, 3).map((e) =>
        create(ProposedEventSchema, { id: e.id, type: e.type, contentType: e.contentType, payload: e.payload as never, metadata: e.metadata }),
      ),
    });
    expect({ revision: retry.revision, positions: retry.positions }).toEqual({ revision: 2n, positions: overHttp1.positions });
  } finally {
    await stopGracefully(second);
  }
});

test("an acknowledged append survives the process being killed (SIGKILL) and the database opens again", async () => {
  const crashDir = join(scratch, "crash-data");
  const first = await startEmbedded(crashDir);
  const client = connectClient(first.port);
  const acked = [];
  for (let i = 0; i < 5; i++) {
    acked.push(await client.append({ stream: "crash-1", events: [create(ProposedEventSchema, { type: "Step", payload: { case: "data", value: json({ i }) } })] }));
  }
  const before = await readStream(grpcClient(first.port), "crash-1");
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");

  const second = await startEmbedded(crashDir);
  try {
    const again = grpcClient(second.port);
    expect(await readStream(again, "crash-1")).toEqual(before);
    expect(before.map((e) => e.id)).toEqual(acked.flatMap((a) => a.eventIds));
    const next = await again.append({
      stream: "crash-1",
      expected: { case: "expectedRevision", value: 4n },
      events: [create(ProposedEventSchema, { type: "Step", payload: { case: "data", value: json({ i: 5 }) } })],
    });
    expect(next.revision).toBe(5n);
  } finally {
    await stopGracefully(second);
  }
});

test("a second server on a data directory in use refuses to start, and the first keeps serving", async () => {
  const dir = join(scratch, "shared");
  const first = await startEmbedded(dir);
  const second = await startEmbedded(dir).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(second?.message).toMatch(/exited with 1 before ready[\s\S]*data directory .* is in use by process \d+/);
  const [r] = [await grpcClient(first.port).append({ stream: "lock-1", events: [{ type: "Kept" }] })];
  expect(r.positions).toHaveLength(1);
  await stopGracefully(first);
  // Its lock is released on stop, so the directory opens again.
  const third = await startEmbedded(dir);
  expect((await readStream(grpcClient(third.port), "lock-1")).map((e) => e.type)).toEqual(["Kept"]);
  await stopGracefully(third);
}, 90_000);

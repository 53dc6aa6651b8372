import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService, StartPoint, type SubscribeRequest, type SubscribeResponse } from "../../gen/eventstore/v1/eventstore_pb";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// A durable (named) subscription is at-least-once across a crash of its consumer: the consumer
// resumes right after the position it committed, so what it processed after that commit comes
// again, and nothing is ever skipped. The consumer is a real process, killed with SIGKILL.

const CONSUMER = join(__dirname, "fixtures/durable-consumer.js");
const COMMIT_EVERY = 50;

type EventStoreClient = Client<typeof EventStoreService>;

interface Processed {
  position: bigint;
  id: string;
}

let db: TestDatabase;
let server: ServerProcess;
let client: EventStoreClient;
let dir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServerProcess({ DATABASE_URL: db.url });
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
  dir = mkdtempSync(join(tmpdir(), "eventstore-durable-"));
}, 60_000);
afterAll(async () => {
  await server?.stop();
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe("a durable subscription consumer killed mid-stream", () => {
  it("resumes right after its committed position: every event processed, only those after the commit twice", async () => {
    const name = `projector-${randomUUID()}`;
    const ledger = createLedger();
    // History for the first run to catch up on.
    for (let b = 0; b < 10; b++) await append(ledger, `order-${b}`, 20);

    const firstFile = join(dir, "first-run");
    const first = startConsumer(name, firstFile, "START");
    const writer = keepWriting(ledger, 300, 10, 15);
    let killedWith: { processed: number; committing: bigint[]; committed: bigint[] };
    try {
      // Mid-stream: past the history, the writer still going, and between two commits.
      await until(() => lines(firstFile).length >= 400, 20_000, "the first run to process 400 events", () => first.failure ?? "");
      await until(() => {
        const n = lines(firstFile).length % COMMIT_EVERY;
        return n >= 10 && n <= COMMIT_EVERY - 10;
      }, 10_000, "the first run to be between two commits");
      first.child.kill("SIGKILL");
      await first.exited;
      killedWith = { processed: lines(firstFile).length, committing: [...first.committing], committed: [...first.committed] };
    } finally {
      first.child.kill("SIGKILL");
    }
    expect(first.failure).toBeUndefined();
    expect(writer.done).toBe(false);

    const checkpoint = await client.getCheckpoint({ subscriptionName: name });
    const committed = checkpoint.position!;
    expect(committed).toBeDefined();
    // The server holds what the consumer last asked it to store: the last commit it saw answered,
    // or one more if the kill fell between the commit and its answer.
    expect([killedWith.committed.at(-1), ...killedWith.committing.slice(killedWith.committed.length)]).toContain(committed);
    expect(checkpoint.committedAt).toBeDefined();

    // Restarted, with a start point that the committed checkpoint overrides.
    const secondFile = join(dir, "second-run");
    const second = startConsumer(name, secondFile, "END");
    try {
      await writer.finished;
      const all = ledger.events.length;
      await until(() => lines(secondFile).length >= ledger.events.filter((e) => e.position > committed).length, 30_000, "the second run to reach the end", () => `${lines(secondFile).length} lines; ${second.failure ?? ""}`);
      // Anything extra (a repeat) would show up by now.
      await new Promise((r) => setTimeout(r, 300));
      expect(ledger.events).toHaveLength(all);
    } finally {
      second.child.kill("SIGKILL");
      await second.exited;
    }
    expect(second.failure).toBeUndefined();
    expect(second.confirmedAfter).toBe(committed);

    const log = await readLog();
    expect(log).toEqual(ledger.inLogOrder());
    const firstRun = parse(lines(firstFile));
    const secondRun = parse(lines(secondFile));
    expect(firstRun).toHaveLength(killedWith.processed);

    // The first run processed a prefix of the log, each event once, and committed after every
    // COMMIT_EVERY of them.
    expect(firstRun).toEqual(log.slice(0, firstRun.length));
    const committedIndex = firstRun.findIndex((e) => e.position === committed);
    expect((committedIndex + 1) % COMMIT_EVERY).toBe(0);
    expect(firstRun.length).toBeGreaterThan(committedIndex + 1);
    expect(firstRun.length).toBeLessThan(log.length);

    // The second run starts right after the committed position and processes the rest, once each.
    expect(secondRun).toEqual(log.filter((e) => e.position > committed));

    // Together: every event; those processed twice are exactly the first run's events after the
    // commit, none of them at or before it.
    const seen = new Set([...firstRun, ...secondRun].map((e) => e.id));
    expect(seen.size).toBe(log.length);
    const twice = firstRun.filter((e) => secondRun.some((s) => s.id === e.id));
    expect(twice).toEqual(firstRun.slice(committedIndex + 1));
    expect(twice.length).toBeGreaterThan(0);
    expect(twice.every((e) => e.position > committed)).toBe(true);
    console.log(
      `first run processed ${firstRun.length} of ${log.length} events, committed up to #${committedIndex + 1} (position ${committed}); ` +
        `${twice.length} events processed again after the restart`,
    );
  }, 90_000);
});

describe("CommitCheckpoint and GetCheckpoint", () => {
  it("GetCheckpoint answers the position last committed under a name, and when", async () => {
    const name = `reader-${randomUUID()}`;
    const ledger = createLedger();
    await append(ledger, `audit-${randomUUID()}`, 3);
    expect((await client.getCheckpoint({ subscriptionName: name })).position).toBeUndefined();

    const before = Date.now();
    await client.commitCheckpoint({ subscriptionName: name, position: ledger.events[1].position });
    const first = await client.getCheckpoint({ subscriptionName: name });
    expect(first.position).toBe(ledger.events[1].position);
    const committedAt = Number(first.committedAt!.seconds) * 1000 + first.committedAt!.nanos / 1e6;
    expect(committedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(committedAt).toBeLessThanOrEqual(Date.now() + 1000);

    await client.commitCheckpoint({ subscriptionName: name, position: ledger.events[2].position });
    expect((await client.getCheckpoint({ subscriptionName: name })).position).toBe(ledger.events[2].position);
    // Names are separate records.
    expect((await client.getCheckpoint({ subscriptionName: `${name}-other` })).position).toBeUndefined();
  });

  it("a name that was never committed starts from the request's start point", async () => {
    const ledger = createLedger();
    const stream = `fresh-${randomUUID()}`;
    await append(ledger, stream, 4);
    const [, second, , fourth] = ledger.events;

    const afterPosition = await subscribeUntilCaughtUp({ stream, subscriptionName: `never-${randomUUID()}`, start: { case: "afterPosition", value: second.position } });
    expect(afterPosition.confirmedAfter).toBe(second.position);
    expect(afterPosition.history.map((e) => e.id)).toEqual(ledger.events.slice(2).map((e) => e.id));

    const fromStart = await subscribeUntilCaughtUp({ stream, subscriptionName: `never-${randomUUID()}`, start: { case: "startPoint", value: StartPoint.START } });
    expect(fromStart.history.map((e) => e.id)).toEqual(ledger.events.map((e) => e.id));

    const fromEnd = await subscribeUntilCaughtUp({ stream, subscriptionName: `never-${randomUUID()}`, start: { case: "startPoint", value: StartPoint.END } });
    expect(fromEnd.confirmedAfter).toBeGreaterThanOrEqual(fourth.position);
    expect(fromEnd.history).toEqual([]);

    // Once committed, the checkpoint wins over the start point.
    const name = `once-${randomUUID()}`;
    await client.commitCheckpoint({ subscriptionName: name, position: second.position });
    const resumed = await subscribeUntilCaughtUp({ stream, subscriptionName: name, start: { case: "startPoint", value: StartPoint.END } });
    expect(resumed.confirmedAfter).toBe(second.position);
    expect(resumed.history.map((e) => e.id)).toEqual(ledger.events.slice(2).map((e) => e.id));
  });
});

interface Ledger {
  events: Processed[];
  inLogOrder(): Processed[];
}

function createLedger(): Ledger {
  const events: Processed[] = [];
  return {
    events,
    inLogOrder: () => [...events].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0)),
  };
}

async function append(ledger: Ledger, stream: string, count: number): Promise<void> {
  const r = await client.append({
    stream,
    events: Array.from({ length: count }, (_, i) => ({ id: randomUUID(), type: "Happened", payload: { case: "data" as const, value: new TextEncoder().encode(`{"n":${i}}`) } })),
  });
  r.eventIds.forEach((id, i) => ledger.events.push({ id, position: r.positions[i] }));
}

/** `batches` appends of `size` events, one every `everyMs`, across a few streams. */
function keepWriting(ledger: Ledger, batches: number, size: number, everyMs: number) {
  const state = { done: false, finished: Promise.resolve() };
  state.finished = (async () => {
    for (let b = 0; b < batches; b++) {
      await append(ledger, `order-${b % 7}`, size);
      await new Promise((r) => setTimeout(r, everyMs));
    }
    state.done = true;
  })();
  return state;
}

interface Consumer {
  child: ChildProcess;
  exited: Promise<void>;
  confirmedAfter: bigint | undefined;
  committing: bigint[];
  committed: bigint[];
  /** Set if it ended on its own (it should run until killed). */
  failure?: string;
}

function startConsumer(name: string, outFile: string, startPoint: "START" | "END"): Consumer {
  const child = spawn(process.execPath, [CONSUMER, `127.0.0.1:${server.port}`, name, outFile, String(COMMIT_EVERY), startPoint], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const consumer: Consumer = {
    child,
    exited: new Promise((resolve) => child.once("exit", () => resolve())),
    confirmedAfter: undefined,
    committing: [],
    committed: [],
  };
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  child.once("exit", (code, signal) => {
    if (signal !== "SIGKILL") consumer.failure = `the consumer exited with ${code ?? signal}: ${stderr}`;
  });
  createInterface({ input: child.stdout! }).on("line", (line) => {
    const m = JSON.parse(line) as { confirmed?: string; committing?: string; committed?: string };
    if (m.confirmed !== undefined) consumer.confirmedAfter = BigInt(m.confirmed);
    if (m.committing !== undefined) consumer.committing.push(BigInt(m.committing));
    if (m.committed !== undefined) consumer.committed.push(BigInt(m.committed));
  });
  return consumer;
}

function lines(file: string): string[] {
  if (!existsSync(file)) return [];
  const text = readFileSync(file, "utf8");
  // A line being written when the process died has no newline yet.
  return text.split("\n").filter((l, i, all) => i < all.length - 1 && l !== "");
}

function parse(ls: string[]): Processed[] {
  return ls.map((l) => {
    const [position, id] = l.split(" ");
    return { position: BigInt(position), id };
  });
}

async function readLog(): Promise<Processed[]> {
  const out: Processed[] = [];
  for await (const r of client.readAll({})) for (const e of r.events) out.push({ id: e.id, position: e.position });
  return out;
}

async function subscribeUntilCaughtUp(request: Partial<SubscribeRequest>): Promise<{ confirmedAfter: bigint; history: Processed[] }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15_000);
  let confirmedAfter: bigint | undefined;
  const history: Processed[] = [];
  try {
    for await (const m of client.subscribe(request as SubscribeRequest, { signal: abort.signal }) as AsyncIterable<SubscribeResponse>) {
      if (m.message.case === "confirmation") confirmedAfter = m.message.value.afterPosition;
      if (m.message.case === "events") for (const e of m.message.value.events) history.push({ id: e.id, position: e.position });
      if (m.message.case === "caughtUp") break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  if (confirmedAfter === undefined) throw new Error("no confirmation");
  return { confirmedAfter, history };
}

async function until(done: () => boolean, ms: number, what: string, state?: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${state ? ` (${state()})` : ""}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

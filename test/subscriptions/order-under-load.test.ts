import { randomBytes, randomUUID } from "node:crypto";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import {
  EventStoreService,
  ExpectedState,
  Operator,
  StartPoint,
  type AppendRequestSchema,
  type AppendResponse,
  type SubscribeRequestSchema,
} from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { consumerGroupMember } from "../../src/domain";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// Subscriptions promise every matching event exactly once, in log order, across the hand-off
// from storage to live delivery and back (fell behind). These tests write under load through
// real server processes, keep a ledger of what the writers were told, and compare every
// subscriber's messages with the ledger, event by event.

type EventStoreClient = Client<typeof EventStoreService>;
type AppendInit = MessageInitShape<typeof AppendRequestSchema>;
type SubscribeInit = MessageInitShape<typeof SubscribeRequestSchema>;

describe("Order and completeness under concurrency", () => {
  const SERVERS = 3;
  const WRITERS = 32;
  const WRITE_MS = 8000;
  const MIN_EVENTS = 2000;
  const HOT_STREAMS = ["hot-0", "hot-1", "hot-2", "hot-3"];
  const COLD_STREAMS = [
    ...range(60).map((i) => `acct-${i}`),
    // Shares a prefix with the category "acct" without being in it.
    ...range(10).map((i) => `acctx-${i}`),
    ...range(40).map((i) => `order-${i}`),
  ];
  const FIXTURE = "misc-fixture";

  let db: TestDatabase;
  let servers: ServerProcess[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    servers = await Promise.all(range(SERVERS).map(() => startServerProcess({ DATABASE_URL: db.url, CHECKPOINT_INTERVAL_MS: "100" })));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await db?.drop();
  }, 30_000);

  it("every subscriber, on every server, gets exactly its acknowledged events once and in log order", async () => {
    const ledger = createLedger();
    const clientOf = (server: number) => connect(servers[server % SERVERS].url);
    await tracked(ledger, clientOf(0), { stream: FIXTURE, events: proposals(ledger, 1) });

    const followers: Follower[] = [];
    const start = (label: string, server: number, request: SubscribeInit, selects: Selects, wholeStreams: boolean) =>
      followers.push(follow(label, clientOf(server), request, { selects, wholeStreams }));
    const category = (name: string): Selects => (e) => e.stream === name || e.stream.startsWith(`${name}-`);
    const member = (m: number): Selects => (e) => consumerGroupMember(e.stream, 3) === m;
    const filtered: Selects = (e) => ["Deposited", "Withdrawn"].includes(e.type) && ["t1", "t2"].includes(e.tenant) && e.n >= 50;
    const filteredRequest: SubscribeInit = {
      filter: {
        eventTypes: ["Deposited", "Withdrawn"],
        matchers: [
          { field: { case: "metadataKey", value: "tenant" }, operator: Operator.IN, values: [text("t1"), text("t2")] },
          { field: { case: "metadataKey", value: "n" }, operator: Operator.GTE, value: { kind: { case: "numberValue", value: 50 } } },
        ],
      },
    };
    const everything: Selects = () => true;

    // Before the writers: they start live (or nearly), and catch up nothing but the fixture.
    start("whole log from START", 0, {}, everything, true);
    start("category hot", 1, { filter: { streams: { case: "category", value: "hot" } } }, category("hot"), true);
    start("stream hot-0", 2, { stream: "hot-0" }, (e) => e.stream === "hot-0", true);
    start("group member 0 of 3", 0, { consumerGroup: { member: 0, size: 3 } }, member(0), true);
    start("group member 1 of 3", 1, { consumerGroup: { member: 1, size: 3 } }, member(1), true);
    // While the writers run, on a schedule: their catch-up meets a moving log.
    const during: [number, () => void][] = [
      [1500, () => start("whole log from END", 2, { start: { case: "startPoint", value: StartPoint.END } }, everything, true)],
      [2500, () => start("whole log from START, late", 1, { start: { case: "startPoint", value: StartPoint.START } }, everything, true)],
      [3000, () => start("category acct", 2, { filter: { streams: { case: "category", value: "acct" } } }, category("acct"), true)],
      [3500, () => start("whole log from a middle position", 0, { start: { case: "afterPosition", value: ledger.maxPosition / 2n } }, everything, true)],
      [4500, () => start("types + metadata filter", 1, filteredRequest, filtered, false)],
      [5500, () => start("group member 2 of 3", 2, { consumerGroup: { member: 2, size: 3 } }, member(2), true)],
      [6000, () => start("stream hot-1", 0, { stream: "hot-1" }, (e) => e.stream === "hot-1", true)],
    ];
    const timers = during.map(([at, run]) => setTimeout(run, at));

    const began = Date.now();
    // WRITE_MS, longer (within reason) if a busy machine has not written MIN_EVENTS by then.
    const keepWriting = () => Date.now() - began < WRITE_MS || (ledger.events.size < MIN_EVENTS && Date.now() - began < 2.5 * WRITE_MS);
    const writing = runWhile(keepWriting, range(WRITERS).map((w) => {
      const client = clientOf(w);
      const known = new Map<string, bigint>(HOT_STREAMS.map((s) => [s, -1n]));
      return () => writeOnce(ledger, client, known, { hot: HOT_STREAMS, cold: COLD_STREAMS, fixture: FIXTURE });
    }));
    await writing;
    const wroteMs = Date.now() - began;
    timers.forEach(clearTimeout);
    expect(followers).toHaveLength(12);

    const head = ledger.maxPosition;
    await untilAllReach(followers, head, 30_000);
    await Promise.all(followers.map((f) => f.stop()));

    // The ledger is the truth only if it is the log: every stored event acknowledged, none refused.
    const log = await readLog(clientOf(0));
    expect(ledger.ambiguous).toEqual([]);
    expect(log.map((e) => e.id)).toEqual(ledger.inOrder().map((e) => e.id));
    expect(log.filter((e) => ledger.refused.has(e.id))).toEqual([]);
    // The load did what it is meant to: batches, conflicts on the hot streams, refusals.
    expect(ledger.conflicts).toBeGreaterThan(10);
    expect(ledger.refused.size).toBeGreaterThan(50);
    expect(ledger.events.size).toBeGreaterThan(1000);

    for (const f of followers) expectExactly(f, ledger);

    // The group shares the whole log: no event twice, none left out.
    const shares = followers.filter((f) => f.label.startsWith("group member")).map((f) => f.events.map((e) => e.id));
    const shared = new Set(shares.flat());
    expect(shares).toHaveLength(3);
    expect(shared.size).toBe(shares.flat().length);
    expect(shared.size).toBe(ledger.events.size);

    console.log(
      `${ledger.events.size} events in ${ledger.appends} appends (${ledger.refused.size} events refused, ${ledger.conflicts} conflicts) ` +
        `by ${WRITERS} writers in ${wroteMs} ms; ${followers.reduce((n, f) => n + f.fellBehind.length, 0)} fell-behinds`,
    );
  }, 90_000);
});

describe("The catch-up to live hand-off under a steady write load", () => {
  const WRITE_MS = 6000;
  const BUFFER_EVENTS = 50;
  // Random, so that gzip (which Connect applies to messages of 1 KiB and more) cannot shrink
  // them, and big: a slow consumer fills the HTTP/2 window within a few dozen events, and the
  // server's live buffer next.
  const DATA_BYTES = 4096;
  const LAG = 150;
  const STREAMS = ["steady-0", "steady-1", "steady-2", "steady-3"];

  let db: TestDatabase;
  let server: ServerProcess | undefined;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startServerProcess({
      DATABASE_URL: db.url,
      SUBSCRIBER_BUFFER_EVENTS: String(BUFFER_EVENTS),
      CHECKPOINT_INTERVAL_MS: "100",
    });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  }, 30_000);

  it("subscribers starting from START while events keep coming, and a slow one, miss nothing and repeat nothing", async () => {
    const ledger = createLedger();
    const url = server!.url;
    const writer = connect(url);
    let writing = true;

    const everything: Selects = () => true;
    // Reads an event only once the writer is LAG events further: far more than the HTTP/2
    // window and the live buffer hold together, so it must fall behind.
    const slow = follow("slow, from START", connect(url), {}, {
      selects: everything,
      wholeStreams: true,
      holdWhile: (e) => writing && ledger.maxPosition - e.position < LAG,
    });
    const staggered: Follower[] = [];
    const timers = range(8).map((i) =>
      setTimeout(() => {
        const request: SubscribeInit = i % 4 === 3 ? { stream: "steady-1" } : {};
        const selects: Selects = i % 4 === 3 ? (e) => e.stream === "steady-1" : everything;
        staggered.push(follow(`from START at ${300 + i * 600} ms`, connect(url), request, { selects, wholeStreams: true }));
      }, 300 + i * 600),
    );
    const resuming = follow("resuming after the last position, again and again", connect(url), {}, {
      selects: everything,
      wholeStreams: true,
      resumeWhile: () => writing,
    });

    // At least WRITE_MS, and on (within reason) until every hand-off under test has happened
    // with more appends to come, however slow the machine is today.
    const handedOff = () => slow.fellBehind.length > 0 && staggered.length === 8 && staggered.every((f) => f.caughtUp.length > 0);
    const began = Date.now();
    let handedOffAt: number | undefined;
    const keepWriting = () => {
      const now = Date.now();
      handedOffAt ??= handedOff() ? now : undefined;
      if (now - began > 4 * WRITE_MS) return false;
      return now - began < WRITE_MS || handedOffAt === undefined || now - handedOffAt < 300;
    };
    let k = 0;
    await runWhile(keepWriting, [
      async () => {
        const n = 1 + Math.floor(Math.random() * 3);
        await tracked(ledger, writer, { stream: STREAMS[k++ % STREAMS.length], events: proposals(ledger, n, { dataBytes: DATA_BYTES }) });
        await sleep(2 + Math.random() * 3);
      },
    ]);
    writing = false;
    timers.forEach(clearTimeout);

    const head = ledger.maxPosition;
    const followers = [slow, ...staggered, resuming];
    await untilAllReach(followers, head, 30_000);
    await Promise.all(followers.map((f) => f.stop()));

    expect(ledger.ambiguous).toEqual([]);
    expect(staggered).toHaveLength(8);
    for (const f of followers) expectExactly(f, ledger);
    // Each staggered subscriber went live while the writer was still appending.
    for (const f of staggered) expect([f.label, f.caughtUp[0] < head]).toEqual([f.label, true]);
    // The slow one was switched to storage at least once and came back to live delivery.
    expect(slow.fellBehind.length).toBeGreaterThan(0);
    expect(slow.caughtUp.length).toBe(slow.fellBehind.length + 1);
    expect(resuming.runs).toBeGreaterThan(5);

    console.log(
      `${ledger.events.size} events in ${ledger.appends} appends; slow subscriber fell behind ${slow.fellBehind.length} times; ` +
        `${resuming.runs} subscribe calls by the resuming one`,
    );
  }, 60_000);
});

/** What the writers were told: the events acknowledged (with their place) and the ones refused. */
interface LedgerEvent {
  id: string;
  stream: string;
  revision: bigint;
  position: bigint;
  type: string;
  tenant: string;
  n: number;
}

interface Ledger {
  events: Map<string, LedgerEvent>;
  refused: Set<string>;
  /** Failures that do not say whether the append happened: none are expected. */
  ambiguous: string[];
  /** What each proposed event carries. */
  proposed: Map<string, { type: string; tenant: string; n: number }>;
  maxPosition: bigint;
  appends: number;
  conflicts: number;
  inOrder(): LedgerEvent[];
}

function createLedger(): Ledger {
  return {
    events: new Map(),
    refused: new Set(),
    ambiguous: [],
    proposed: new Map(),
    maxPosition: 0n,
    appends: 0,
    conflicts: 0,
    inOrder() {
      return [...this.events.values()].sort((a, b) => (a.position < b.position ? -1 : a.position > b.position ? 1 : 0));
    },
  };
}

const TYPES = ["Opened", "Deposited", "Withdrawn", "Noted"];
const TENANTS = ["t0", "t1", "t2", "t3"];

function proposals(ledger: Ledger, count: number, options: { type?: string; dataBytes?: number } = {}) {
  return range(count).map(() => {
    const id = randomUUID();
    const facts = { type: options.type ?? pick(TYPES), tenant: pick(TENANTS), n: Math.floor(Math.random() * 100) };
    ledger.proposed.set(id, facts);
    return {
      id,
      type: facts.type,
      payload: { case: "data" as const, value: randomBytes(options.dataBytes ?? 16) },
      metadata: { tenant: facts.tenant, n: facts.n },
    };
  });
}

/** An append or a multi-stream append, its outcome written to the ledger. Returns the error, if refused. */
async function tracked(ledger: Ledger, client: EventStoreClient, ...appends: AppendInit[]): Promise<ConnectError | undefined> {
  const ids = appends.map((a) => a.events!.map((e) => e.id!));
  let results: AppendResponse[];
  try {
    results = appends.length === 1 ? [await client.append(appends[0])] : (await client.multiStreamAppend({ appends })).results;
  } catch (e) {
    const err = ConnectError.from(e);
    if (REFUSALS.includes(err.code)) ids.flat().forEach((id) => ledger.refused.add(id));
    else ledger.ambiguous.push(`${Code[err.code]}: ${err.rawMessage}`);
    return err;
  }
  ledger.appends++;
  results.forEach((r, i) => {
    if (r.eventIds.join() !== ids[i].join()) ledger.ambiguous.push(`${r.stream}: answered ids ${r.eventIds.join()} for ${ids[i].join()}`);
    ids[i].forEach((id, k) => {
      const facts = ledger.proposed.get(id)!;
      const event = { id, stream: r.stream, revision: r.revision - BigInt(ids[i].length - 1 - k), position: r.positions[k], ...facts };
      ledger.events.set(id, event);
      if (event.position > ledger.maxPosition) ledger.maxPosition = event.position;
    });
  });
  return undefined;
}

/** One step of a writer in the concurrency test: a random kind of append. */
async function writeOnce(
  ledger: Ledger,
  client: EventStoreClient,
  known: Map<string, bigint>,
  streams: { hot: string[]; cold: string[]; fixture: string },
): Promise<void> {
  const r = Math.random();
  if (r < 0.3) {
    await tracked(ledger, client, { stream: pick(streams.cold), events: proposals(ledger, 1) });
  } else if (r < 0.42) {
    await tracked(ledger, client, { stream: pick(streams.cold), events: proposals(ledger, 10 + Math.floor(Math.random() * 41)) });
  } else if (r < 0.52) {
    const names = distinct(streams.cold, 2 + Math.floor(Math.random() * 3));
    await tracked(ledger, client, ...names.map((stream) => ({ stream, events: proposals(ledger, 1 + Math.floor(Math.random() * 5)) })));
  } else if (r < 0.85) {
    // Exact expected revisions on a few hot streams, from what this writer last saw: losers
    // learn the actual revision from the error and try again later.
    const stream = pick(streams.hot);
    const revision = known.get(stream)!;
    const expected = revision < 0n
      ? { case: "expectedState" as const, value: ExpectedState.NO_STREAM }
      : { case: "expectedRevision" as const, value: revision };
    const count = 1 + Math.floor(Math.random() * 5);
    const events = proposals(ledger, count);
    const err = await tracked(ledger, client, { stream, expected, events });
    if (err === undefined) {
      known.set(stream, ledger.events.get(events[count - 1].id)!.revision);
    } else if (err.code === Code.Aborted) {
      ledger.conflicts++;
      const actual = err.findDetails(ErrorInfoSchema)[0]?.metadata.actual_revision;
      known.set(stream, actual === undefined || actual === "none" ? -1n : BigInt(actual));
    }
  } else {
    // Appends that must fail, whole.
    const kind = Math.floor(Math.random() * 4);
    const far = { case: "expectedRevision" as const, value: 1_000_000n };
    if (kind === 0) {
      await tracked(ledger, client, { stream: pick(streams.cold), expected: far, events: proposals(ledger, 1 + Math.floor(Math.random() * 10)) });
    } else if (kind === 1) {
      const noStream = { case: "expectedState" as const, value: ExpectedState.NO_STREAM };
      await tracked(ledger, client, { stream: streams.fixture, expected: noStream, events: proposals(ledger, 3) });
    } else if (kind === 2) {
      const [a, b] = distinct(streams.cold, 2);
      await tracked(ledger, client, { stream: a, events: proposals(ledger, 5) }, { stream: b, expected: far, events: proposals(ledger, 5) });
    } else {
      await tracked(ledger, client, { stream: pick(streams.cold), events: [...proposals(ledger, 2), ...proposals(ledger, 1, { type: "" })] });
    }
  }
}

const REFUSALS = [Code.Aborted, Code.InvalidArgument, Code.FailedPrecondition, Code.AlreadyExists, Code.NotFound, Code.ResourceExhausted];

type Selects = (e: LedgerEvent) => boolean;

interface Received {
  id: string;
  stream: string;
  revision: bigint;
  position: bigint;
}

/** One subscriber and everything it was sent. */
interface Follower {
  label: string;
  selects: Selects;
  /** Whether it sees every event of each stream it sees (no type or metadata filter). */
  wholeStreams: boolean;
  /** The first confirmation's after_position. */
  start?: bigint;
  events: Received[];
  caughtUp: bigint[];
  fellBehind: bigint[];
  /** The highest position it was told about: confirmation, event, checkpoint, caught-up. */
  reached: bigint;
  /** Served live: caught up, and not fallen behind since. */
  live: boolean;
  /** Subscribe calls made: more than one when it resumes. */
  runs: number;
  /** Broken promises noticed as messages arrived. */
  violations: string[];
  error?: unknown;
  stop(): Promise<void>;
}

interface FollowOptions {
  selects: Selects;
  wholeStreams: boolean;
  /** A slow consumer: after each event, sleeps while this holds. */
  holdWhile?: (e: Received) => boolean;
  /** While this says so, hang up every few hundred ms and resume after the last position reported. */
  resumeWhile?: () => boolean;
}

function follow(label: string, client: EventStoreClient, request: SubscribeInit, options: FollowOptions): Follower {
  const stopped = new AbortController();
  const f: Follower = {
    label,
    selects: options.selects,
    wholeStreams: options.wholeStreams,
    events: [],
    caughtUp: [],
    fellBehind: [],
    reached: -1n,
    live: false,
    runs: 0,
    violations: [],
    stop: async () => {
      stopped.abort();
      await done;
    },
  };
  // Reported positions never go back (events, checked below, must go strictly forward).
  const report = (what: string, position: bigint) => {
    if (position < f.reached) f.violations.push(`${what} at ${position} after ${f.reached} was reported`);
    else f.reached = position;
  };
  const run = async (req: SubscribeInit) => {
    const call = new AbortController();
    const hangUp = () => call.abort();
    stopped.signal.addEventListener("abort", hangUp);
    const timer = options.resumeWhile?.() ? setTimeout(hangUp, 150 + Math.random() * 250) : undefined;
    f.runs++;
    f.live = false;
    let confirmed = false;
    try {
      for await (const m of client.subscribe({ heartbeatIntervalMs: 500, ...req }, { signal: call.signal })) {
        const message = m.message;
        if (!confirmed && message.case !== "confirmation") f.violations.push(`${message.case} before the confirmation`);
        switch (message.case) {
          case "confirmation":
            if (confirmed) f.violations.push("a second confirmation");
            confirmed = true;
            if (f.start === undefined) f.start = f.reached = message.value.afterPosition;
            else if (message.value.afterPosition !== f.reached) {
              f.violations.push(`resumed after ${message.value.afterPosition}, asked for ${f.reached}`);
            }
            break;
          case "events":
            if (message.value.events.length === 0) f.violations.push("an empty batch");
            for (const e of message.value.events) {
              if (e.position <= f.reached) f.violations.push(`event at ${e.position} after ${f.reached} was reported`);
              f.reached = e.position;
              const received = { id: e.id, stream: e.stream, revision: e.revision, position: e.position };
              f.events.push(received);
              while (options.holdWhile?.(received) && !call.signal.aborted) await sleep(5);
            }
            break;
          case "caughtUp":
            if (f.live) f.violations.push("caught up twice without falling behind");
            f.live = true;
            f.caughtUp.push(message.value.position);
            report("caught-up", message.value.position);
            break;
          case "fellBehind":
            if (!f.live) f.violations.push("fell behind before it was live");
            f.live = false;
            f.fellBehind.push(message.value.position);
            report("fell-behind", message.value.position);
            break;
          case "checkpoint":
            report("checkpoint", message.value.position);
            break;
        }
      }
      f.error = new Error("the subscription ended by itself");
    } catch (e) {
      if (!call.signal.aborted) f.error = e;
    } finally {
      clearTimeout(timer);
      stopped.signal.removeEventListener("abort", hangUp);
    }
  };
  const done = (async () => {
    await run(request);
    // A resume needs a confirmed first run; a hang-up before it simply starts over.
    while (!stopped.signal.aborted && f.error === undefined) {
      await run(f.start === undefined ? request : { ...request, start: { case: "afterPosition", value: f.reached } });
    }
  })();
  return f;
}

/** The assertions every subscriber must pass against the ledger. */
function expectExactly(f: Follower, ledger: Ledger): void {
  const label = (x: unknown) => [f.label, x];
  expect(label(f.error)).toEqual(label(undefined));
  expect(label(f.violations)).toEqual(label([]));
  expect(label(f.start === undefined)).toEqual(label(false));
  const start = f.start!;

  const log = ledger.inOrder();
  const expected = log.filter((e) => e.position > start && f.selects(e));
  const counts = new Map<string, number>();
  for (const e of f.events) counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
  const duplicates = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  const missing = expected.filter((e) => !counts.has(e.id)).map((e) => `${e.stream}@${e.revision} (position ${e.position})`);
  const wanted = new Set(expected.map((e) => e.id));
  const refused = f.events.filter((e) => ledger.refused.has(e.id)).map((e) => e.id);
  const unexpected = f.events.filter((e) => !wanted.has(e.id)).map((e) => `${e.stream}@${e.revision} (position ${e.position})`);
  expect(label({ duplicates, missing: missing.slice(0, 10), missingCount: missing.length, refused, unexpected: unexpected.slice(0, 10) })).toEqual(
    label({ duplicates: [], missing: [], missingCount: 0, refused: [], unexpected: [] }),
  );
  // Each event as stored, in log order.
  const mismatch = expected.findIndex((e, i) => {
    const g = f.events[i];
    return g.id !== e.id || g.stream !== e.stream || g.revision !== e.revision || g.position !== e.position;
  });
  expect(label(mismatch === -1 ? "in order" : { at: mismatch, got: f.events[mismatch], expected: expected[mismatch] })).toEqual(label("in order"));

  // Per stream, revisions only go up: by one when the subscriber sees whole streams, and from 0
  // when it saw a stream from its first event.
  const firstPosition = new Map<string, bigint>();
  for (const e of log) if (!firstPosition.has(e.stream)) firstPosition.set(e.stream, e.position);
  const last = new Map<string, bigint>();
  const revisionFaults: string[] = [];
  for (const e of f.events) {
    const previous = last.get(e.stream);
    const ok =
      previous === undefined
        ? !f.wholeStreams || firstPosition.get(e.stream)! <= start || e.revision === 0n
        : f.wholeStreams
          ? e.revision === previous + 1n
          : e.revision > previous;
    if (!ok) revisionFaults.push(`${e.stream}@${e.revision} after ${previous ?? "nothing"}`);
    last.set(e.stream, e.revision);
  }
  expect(label(revisionFaults)).toEqual(label([]));
}

/** Waits until every subscriber has been told about `head` and is served live. */
async function untilAllReach(followers: Follower[], head: bigint, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const behind = followers.filter((f) => f.error === undefined && (f.reached < head || !f.live));
    if (behind.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`not at the head (${head}) after ${timeoutMs} ms: ${behind.map((f) => `${f.label} at ${f.reached}${f.live ? "" : " (not live)"}`).join("; ")}`);
    }
    await sleep(50);
  }
}

async function readLog(client: EventStoreClient): Promise<{ id: string; position: bigint }[]> {
  const events: { id: string; position: bigint }[] = [];
  for await (const page of client.readAll({})) for (const e of page.events) events.push({ id: e.id, position: e.position });
  return events;
}

/** Runs each task in a loop, concurrently, while `going` says so. */
async function runWhile(going: () => boolean, tasks: (() => Promise<unknown>)[]): Promise<void> {
  await Promise.all(
    tasks.map(async (task) => {
      while (going()) await task();
    }),
  );
}

function connect(baseUrl: string): EventStoreClient {
  return createClient(EventStoreService, createGrpcTransport({ baseUrl }));
}

function text(value: string) {
  return { kind: { case: "stringValue" as const, value } };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function pick<T>(xs: T[]): T {
  return xs[Math.floor(Math.random() * xs.length)];
}

function distinct<T>(xs: T[], n: number): T[] {
  const copy = [...xs];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy.slice(0, n);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

import { randomBytes } from "node:crypto";
import type { EventStore } from "../src/store";
import { callCostCase } from "./call-cost";
import { catchUpCase } from "./catch-up";
import { createEventStoreClient, type ClientKind, type EventStoreClient } from "./event-store-client";
import { fanOutCase, type FanOutSettings } from "./fan-out";
import type { Isolation } from "./isolated-server";
import { liveLatencyCase, type LiveLatencySettings } from "./live-latency";
import { createEvent, createEvents } from "./payload";
import type { RawBaseline, RawClient } from "./raw-baseline";
import { READ_STREAM, SEED_WRITERS, seedReadData } from "./seed";
import type { ServerProcess } from "./server-process";
import { combine, round, runTimed, summarize, type Measurement } from "./stats";
import { createStoreClient } from "./store-client";
import { startUsageAfter, type Usage } from "./usage";

export interface BenchSettings {
  /** Unmeasured time before each side's first turn. */
  warmupMs: number;
  /** Measured time per side and case, split into `turns` turns taken alternately. */
  durationMs: number;
  turns: number;
  /** Events in the stream that ReadStream reads. */
  streamEvents: number;
  /** Events in the whole log that ReadAll reads. */
  logEvents: number;
  subscriptions: {
    live: LiveLatencySettings;
    fanOut: FanOutSettings;
    /** Events in the log that the catch-up case's subscriber reads from the start. */
    catchUpEvents: number;
  };
}

export interface BenchContext {
  server: ServerProcess;
  clientKind: ClientKind;
  /** Our store in the benchmark's process, for the figures without gRPC. */
  store: EventStore;
  raw: RawBaseline;
  settings: BenchSettings;
  /** For cases that need a database and server of their own. */
  isolation: Isolation;
}

/** One JSON line of the report. */
export type CaseResult = Record<string, string | number>;

export interface BenchCase {
  name: string;
  run(ctx: BenchContext): Promise<CaseResult>;
}

/** One side of a comparison: how many clients, and what one of them does once. */
interface Side {
  clients: number;
  operation(client: number): Promise<number>;
}

interface Sides {
  ours: Side;
  store: Side;
  raw: Side;
  notify?: Side;
}

const RAW_PAGE_ROWS = 1000;

/**
 * Every case, in the order they run: reads first, on data seeded for them, then appends; then
 * subscriptions, each on a database and server of its own.
 */
export function createCases(): BenchCase[] {
  return [
    { name: "seed", run: seed },
    readCase("read-stream", (c) => c.readStream(READ_STREAM), (r) => r.readStream(READ_STREAM)),
    readCase("read-all", (c) => c.readAll(), (r) => r.readAll(RAW_PAGE_ROWS)),
    appendCase(1, 1),
    appendCase(1, 8),
    appendCase(1, 32),
    hotAppendCase(32, 8),
    appendCase(100, 1),
    appendCase(100, 8),
    callCostCase(),
    liveLatencyCase(),
    fanOutCase(),
    catchUpCase(),
  ];
}

async function seed(ctx: BenchContext): Promise<CaseResult> {
  await withClients(ctx, SEED_WRITERS, (ours, raw) => seedReadData(ours, raw, ctx.settings.streamEvents, ctx.settings.logEvents));
  return { seeded_events: ctx.settings.logEvents };
}

function readCase(name: string, read: (c: EventStoreClient) => Promise<number>, readRaw: (r: RawClient) => Promise<number>): BenchCase {
  return {
    name,
    run: (ctx) =>
      withClients(ctx, 1, async ([ours], [raw]) => {
        const expected = name === "read-stream" ? ctx.settings.streamEvents : ctx.settings.logEvents;
        const checked = async (reading: Promise<number>) => {
          const n = await reading;
          if (n !== expected) throw new Error(`${name} read ${n} events, expected ${expected}`);
          return n;
        };
        const store = createStoreClient(ctx.store);
        return measure(ctx, name, 1, expected, {
          ours: { clients: 1, operation: () => checked(read(ours)) },
          store: { clients: 1, operation: () => checked(read(store)) },
          raw: { clients: 1, operation: () => checked(readRaw(raw)) },
        });
      }),
  };
}

function appendCase(eventsPerAppend: number, clients: number): BenchCase {
  const name = `append${eventsPerAppend}-c${clients}`;
  return {
    name,
    run: (ctx) =>
      withClients(ctx, clients, async (ours, raws) => {
        const run = randomBytes(4).toString("hex");
        const store = createStoreClient(ctx.store);
        const appender = (tag: string, client: (i: number) => EventStoreClient): Side => {
          const next: (bigint | undefined)[] = [];
          return {
            clients,
            async operation(i) {
              const expected = next[i];
              const written = await client(i).append(`${name}-${run}-${tag}-${i}`, createEvents(eventsPerAppend, i), expected);
              if (!written) throw new Error(`${name}: a conflict on a stream of one writer`);
              next[i] = (expected ?? -1n) + BigInt(eventsPerAppend);
              return eventsPerAppend;
            },
          };
        };
        const inserter = (tag: string, insert: (r: RawClient, stream: string, revision: bigint) => Promise<void>): Side => {
          const next = raws.map(() => 0n);
          return {
            clients,
            async operation(i) {
              await insert(raws[i], `${name}-${run}-${tag}-${i}`, next[i]);
              next[i] += BigInt(eventsPerAppend);
              return eventsPerAppend;
            },
          };
        };
        const sides: Sides = {
          ours: appender("ours", (i) => ours[i]),
          store: appender("store", () => store),
          raw:
            eventsPerAppend === 1
              ? inserter("raw", (raw, s, rev) => raw.insert(s, rev, createEvent(0)))
              : inserter("raw", (raw, s, rev) => raw.insertBatch(s, rev, createEvents(eventsPerAppend, 0))),
          notify: eventsPerAppend === 1 ? inserter("notify", (raw, s, rev) => raw.insertNotify(s, rev, createEvent(0))) : undefined,
        };
        return measure(ctx, name, clients, eventsPerAppend, sides);
      }),
  };
}

/**
 * `clients` writers on `streams` hot streams (writer i on stream i % streams), one event per
 * append, each with the expected revision its writer last saw: writers of one stream race, and
 * a loser re-reads the stream's revision (GetStream; raw: `max(revision)`) and tries again.
 * Events per second count what was written; a lost race is an operation that wrote nothing.
 * Raw appends are single-row INSERTs at the next revision, refused by the unique index when it
 * is taken, with and without a NOTIFY.
 */
function hotAppendCase(clients: number, streams: number): BenchCase {
  const name = `append1-hot${streams}-c${clients}`;
  return {
    name,
    run: (ctx) =>
      withClients(ctx, clients, async (ours, raws) => {
        const run = randomBytes(4).toString("hex");
        const store = createStoreClient(ctx.store);
        const stream = (tag: string, i: number) => `${name}-${run}-${tag}-${i % streams}`;
        const racer = (tag: string, client: (i: number) => EventStoreClient): Side => {
          const seen: (bigint | undefined)[] = [];
          return {
            clients,
            async operation(i) {
              if (await client(i).append(stream(tag, i), [createEvent(i)], seen[i])) {
                seen[i] = (seen[i] ?? -1n) + 1n;
                return 1;
              }
              seen[i] = await client(i).streamRevision(stream(tag, i));
              return 0;
            },
          };
        };
        const rawRacer = (tag: string, notify: boolean): Side => {
          const seen: (bigint | undefined)[] = [];
          return {
            clients,
            async operation(i) {
              const next = (seen[i] ?? -1n) + 1n;
              if (await raws[i].tryInsert(stream(tag, i), next, createEvent(i), notify)) {
                seen[i] = next;
                return 1;
              }
              seen[i] = await raws[i].streamRevision(stream(tag, i));
              return 0;
            },
          };
        };
        return measure(ctx, name, clients, 1, {
          ours: racer("ours", (i) => ours[i]),
          store: racer("store", () => store),
          raw: rawRacer("raw", false),
          notify: rawRacer("notify", true),
        });
      }),
  };
}

/**
 * Measures the sides in turns (ours, store, raw, ours, ...), so that a change in the load of
 * this shared machine hits every side alike; each side warms up before its first turn. The
 * server's RSS is the highest sample taken while the case ran.
 */
async function measure(ctx: BenchContext, name: string, clients: number, eventsPerOp: number, sides: Sides): Promise<CaseResult> {
  const { warmupMs, durationMs, turns } = ctx.settings;
  const entries = Object.entries(sides).filter((e): e is [string, Side] => e[1] !== undefined);
  const parts = new Map<string, Measurement[]>(entries.map(([key]) => [key, []]));
  const usages = new Map<string, Usage[]>(entries.map(([key]) => [key, []]));
  let rss = ctx.server.rssMb();
  const sampler = setInterval(() => (rss = Math.max(rss, ctx.server.rssMb())), 100);
  try {
    for (let turn = 0; turn < turns; turn++) {
      // Every other turn in the reverse order (ABBA): a side that leaves PostgreSQL work behind
      // (WAL to flush, pages to write) slows the side after it, and each side follows the
      // other as often.
      for (const [key, side] of turn % 2 === 0 ? entries : [...entries].reverse()) {
        const warmup = turn === 0 ? warmupMs : 0;
        const usage = startUsageAfter(warmup, ctx.server.pid);
        parts.get(key)!.push(await runTimed({ ...side, warmupMs: warmup, durationMs: durationMs / turns }));
        usages.get(key)!.push(usage.stop());
      }
    }
  } finally {
    clearInterval(sampler);
  }
  const s = Object.fromEntries([...parts].map(([key, m]) => [key, summarize(combine(m))]));
  const line: CaseResult = { case: name, clients, events_per_op: eventsPerOp };
  for (const key of ["ours", "raw", "store", "notify"]) {
    if (!s[key]) continue;
    const prefix = key === "notify" ? "raw_notify" : key;
    line[`${prefix}_eps`] = round(s[key].eps, 0);
    line[`${prefix}_p50_ms`] = round(s[key].p50Ms, 2);
    line[`${prefix}_p99_ms`] = round(s[key].p99Ms, 2);
    line[`${prefix}_ops`] = s[key].ops;
  }
  line.ratio = round(s.ours.eps / s.raw.eps, 3);
  line.store_ratio = round(s.store.eps / s.raw.eps, 3);
  if (s.notify) line.ratio_vs_notify = round(s.ours.eps / s.notify.eps, 3);
  line.server_rss_mb = round(Math.max(rss, ctx.server.rssMb()), 1);
  // Where the CPU went on each side (percent of one core; the machine has two): the server,
  // this process (the clients, or the store for its side) and PostgreSQL.
  for (const [key, u] of usages) {
    const prefix = key === "notify" ? "raw_notify" : key;
    const mean = (f: (x: Usage) => number) => round(u.reduce((sum, x) => sum + f(x), 0) / u.length, 0);
    if (key === "ours") line.ours_server_cpu_pct = mean((x) => x.server);
    line[`${prefix}_client_cpu_pct`] = mean((x) => x.client);
    line[`${prefix}_postgres_cpu_pct`] = mean((x) => x.postgres);
  }
  return line;
}

async function withClients<T>(ctx: BenchContext, n: number, work: (ours: EventStoreClient[], raw: RawClient[]) => Promise<T>): Promise<T> {
  const ours = Array.from({ length: n }, () => createEventStoreClient(ctx.clientKind, ctx.server.url));
  const raw = await Promise.all(Array.from({ length: n }, () => ctx.raw.client()));
  try {
    return await work(ours, raw);
  } finally {
    for (const c of ours) c.close();
    await Promise.all(raw.map((r) => r.end()));
  }
}

import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { BenchCase, BenchContext, CaseResult } from "./cases";
import { createEventStoreClient } from "./event-store-client";
import { createSubscribers } from "./grpc-js-subscriber";
import type { IsolatedServer } from "./isolated-server";
import { createPacedWriter, createReceipts, type LatencySummary, type PacedWriter, type Receipts } from "./paced-writer";
import { followRawLog } from "./raw-live";
import { round } from "./stats";
import { startUsageAfter, trackPeakRss, usageFields } from "./usage";

export interface LiveLatencySettings {
  subscribers: number;
  /** HTTP/2 connections the subscribers share. */
  channels: number;
  /** The writer appends `eventsPerTick` events in one Append every `tickMs`. */
  tickMs: number;
  eventsPerTick: number;
  warmupMs: number;
  durationMs: number;
}

/** Appends still unanswered when the next tick comes: more, and the tick is skipped. */
const MAX_IN_FLIGHT = 16;
/** After the writer stops, how long delivery of what it wrote may take. */
const DRAIN_MS = 60_000;

/**
 * Live subscribers of the whole log (from END) on one server, a writer at a steady rate, and
 * per event and subscriber the time from the append's answer to the event's arrival, both on
 * this process's clock. Beside it, raw: the same writes as INSERT + NOTIFY, and one LISTEN
 * reader that fetches the new rows on each notification.
 */
export function liveLatencyCase(): BenchCase {
  return { name: "live-latency", run: (ctx) => ctx.isolation.run((env) => measure(ctx, env)) };
}

async function measure(ctx: BenchContext, env: IsolatedServer): Promise<CaseResult> {
  const s = ctx.settings.subscriptions.live;
  const run = randomBytes(4).toString("hex");
  const ours = await oursSide(ctx, env, run);
  const raw = await rawSide(ctx, env, run);
  return {
    case: "live-latency",
    clients: s.subscribers,
    channels: s.channels,
    writer: `${s.eventsPerTick} events per append every ${s.tickMs} ms`,
    target_eps: round((1000 * s.eventsPerTick) / s.tickMs, 0),
    ...latencyFields("ours", ours.summary),
    delivered_eps: round(ours.summary.deliveredEps, 0),
    ...latencyFields("raw", raw.summary),
    missing: ours.summary.missing,
    raw_missing: raw.summary.missing,
    duplicates: ours.receipts.duplicates,
    fell_behind: ours.fellBehind,
    failed_streams: ours.failedStreams,
    skipped_ticks: ours.writer.skippedTicks,
    failed_appends: ours.writer.failedWrites,
    ...ours.usage,
    server_rss_mb: round(ours.rssMb, 1),
  };
}

function latencyFields(prefix: string, s: LatencySummary): CaseResult {
  return {
    [`${prefix}_written_eps`]: round(s.writtenEps, 0),
    [`${prefix}_p50_ms`]: round(s.p50Ms, 2),
    [`${prefix}_p99_ms`]: round(s.p99Ms, 2),
    [`${prefix}_max_ms`]: round(s.maxMs, 2),
    [`${prefix}_min_ms`]: round(s.minMs, 2),
  };
}

async function oursSide(ctx: BenchContext, env: IsolatedServer, run: string) {
  const s = ctx.settings.subscriptions.live;
  const appender = createEventStoreClient(ctx.clientKind, env.server.url);
  const subscribers = createSubscribers(env.server.url, s.channels);
  // A stream per append: appends in flight together need no expected revision of each other.
  const writer = createPacedWriter({ ...s, maxInFlight: MAX_IN_FLIGHT, write: async (tick, events) => void (await appender.append(`live-${run}-${tick}`, events, undefined)) });
  const receipts = createReceipts(writer, s.subscribers);
  let fellBehind = 0;
  let failedStreams = 0;
  const subscriptions = Array.from({ length: s.subscribers }, (_, i) =>
    subscribers.subscribe(
      i,
      { startPoint: "START_POINT_END" },
      { onEvent: (id) => receipts.record(i, id), onFellBehind: () => fellBehind++, onError: () => failedStreams++ },
    ),
  );
  try {
    await Promise.all(subscriptions.map((sub) => sub.caughtUp));
    const rss = trackPeakRss(env.server.rssMb);
    const usage = startUsageAfter(s.warmupMs, env.server.pid);
    await writer.run();
    const used = usage.stop();
    await drain(writer, receipts, s.subscribers);
    return { summary: receipts.summarize(), receipts, writer, fellBehind, failedStreams, usage: usageFields(used), rssMb: rss.stop() };
  } finally {
    for (const sub of subscriptions) sub.cancel();
    subscribers.close();
    appender.close();
  }
}

async function rawSide(ctx: BenchContext, env: IsolatedServer, run: string) {
  const s = ctx.settings.subscriptions.live;
  // One connection: its statements commit in the order sent, so the identity positions commit
  // in order too and the reader's `position > last` misses none.
  const client = await env.raw.client();
  const writer = createPacedWriter({
    ...s,
    maxInFlight: MAX_IN_FLIGHT,
    write: (tick, events) => client.insertBatchNotify(`live-raw-${run}-${tick}`, 0n, events),
  });
  const receipts = createReceipts(writer, 1);
  const follower = await followRawLog(env.url, (id) => receipts.record(0, id));
  try {
    await writer.run();
    await drain(writer, receipts, 1);
    return { summary: receipts.summarize() };
  } finally {
    await follower.end();
    await client.end();
  }
}

/** Waits until every subscriber has received every event the writer got an answer for. */
async function drain(writer: PacedWriter, receipts: Receipts, subscribers: number): Promise<void> {
  const acked = writer.ackAt.reduce((n, at) => (Number.isNaN(at) ? n : n + 1), 0);
  const until = performance.now() + DRAIN_MS;
  const done = () => Array.from({ length: subscribers }, (_, i) => receipts.count(i)).every((n) => n >= acked);
  while (!done() && performance.now() < until) await sleep(20);
}

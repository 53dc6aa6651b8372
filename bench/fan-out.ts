import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import type { BenchCase, BenchContext, CaseResult } from "./cases";
import { createEventStoreClient, type EventStoreClient } from "./event-store-client";
import { createSubscribers, type Subscription } from "./grpc-js-subscriber";
import type { IsolatedServer } from "./isolated-server";
import { createEvents } from "./payload";
import type { ServerProcess } from "./server-process";
import { median, round } from "./stats";
import { startUsageAfter, trackPeakRss, usageFields } from "./usage";

export interface FanOutSettings {
  subscribers: number;
  /** HTTP/2 connections the subscribers share. */
  channels: number;
  /** The writer appends this many events per Append, one Append after the other. */
  eventsPerAppend: number;
  warmupMs: number;
  durationMs: number;
}

/** How long the first batch may take to reach every subscriber. */
const BATCH_TIMEOUT_MS = 30_000;
/** Time for the server's memory to settle before and after the subscribers open. */
const SETTLE_MS = 500;

/**
 * Many live subscribers of the whole log on one server: the LISTEN connections it holds for
 * them, the memory an idle subscriber costs, how long one batch takes to reach them all, and the
 * events delivered per second (over all subscribers) while one writer appends batches back to
 * back. No raw side: fan-out is the server's own work.
 */
export function fanOutCase(): BenchCase {
  return { name: "fan-out", run: (ctx) => ctx.isolation.run((env) => measure(ctx, env)) };
}

async function measure(ctx: BenchContext, env: IsolatedServer): Promise<CaseResult> {
  const s = ctx.settings.subscriptions.fanOut;
  const run = randomBytes(4).toString("hex");
  const subscribers = createSubscribers(env.server.url, s.channels);
  const appender = createEventStoreClient(ctx.clientKind, env.server.url);
  const received = new Float64Array(s.subscribers);
  const firstAt = new Float64Array(s.subscribers).fill(Number.NaN);
  const lastAt = new Float64Array(s.subscribers);
  const counting = (i: number) => () => {
    const now = performance.now();
    if (received[i]++ === 0) firstAt[i] = now;
    lastAt[i] = now;
  };
  const fellBehind = new Set<number>();
  let failedStreams = 0;
  const subscriptions: Subscription[] = [];
  const open = (i: number, onEvent: (id: string) => void) =>
    subscribers.subscribe(
      i,
      { startPoint: "START_POINT_END" },
      { onEvent, onFellBehind: () => fellBehind.add(i), onError: () => failedStreams++ },
    );
  try {
    // Connect every channel and run the subscription path once before the baseline, so that
    // the difference is the subscribers, not the connections or the compiled code.
    const warm = Array.from({ length: s.channels }, (_, i) => open(i, () => {}));
    await Promise.all(warm.map((w) => w.caughtUp));
    warm.forEach((w) => w.cancel());
    await sleep(SETTLE_MS);
    const rssNone = await steadyRssMb(env.server);

    const opening = performance.now();
    for (let i = 0; i < s.subscribers; i++) subscriptions.push(open(i, counting(i)));
    await Promise.all(subscriptions.map((sub) => sub.caughtUp));
    const openSeconds = (performance.now() - opening) / 1000;
    await sleep(SETTLE_MS);
    const rssIdle = await steadyRssMb(env.server);
    const connections = await countConnections(env.url);
    const burst = await firstBatch(s, appender, run, received, firstAt, lastAt);

    const rss = trackPeakRss(env.server.rssMb);
    const usage = startUsageAfter(s.warmupMs, env.server.pid);
    const start = performance.now();
    let before: { at: number; received: Float64Array } | undefined;
    let after: { at: number; received: Float64Array } | undefined;
    const snapshot = () => ({ at: performance.now(), received: received.slice() });
    const timers = [setTimeout(() => (before = snapshot()), s.warmupMs), setTimeout(() => (after = snapshot()), s.warmupMs + s.durationMs)];
    const answered: number[] = [];
    for (let k = 0; performance.now() < start + s.warmupMs + s.durationMs; k++) {
      await appender.append(`fan-out-${run}-${k}`, createEvents(s.eventsPerAppend, 0), undefined);
      answered.push(performance.now());
    }
    const used = usage.stop();
    timers.forEach(clearTimeout);
    after ??= snapshot();
    before ??= { at: start, received: new Float64Array(s.subscribers) };
    const seconds = (after.at - before.at) / 1000;
    const written = answered.filter((t) => t >= before!.at && t < after!.at).length * s.eventsPerAppend;
    const perSubscriber = Array.from(after.received, (n, i) => (n - before!.received[i]) / seconds);
    // With the first batch.
    const writtenBeforeEnd = (1 + answered.filter((t) => t < after!.at).length) * s.eventsPerAppend;
    return {
      case: "fan-out",
      clients: s.subscribers,
      channels: s.channels,
      writer: `${s.eventsPerAppend} events per append, back to back`,
      listen_connections: connections.listen,
      server_connections: connections.server,
      subscribe_all_s: round(openSeconds, 2),
      rss_no_subscribers_mb: round(rssNone, 1),
      rss_idle_subscribers_mb: round(rssIdle, 1),
      kb_per_idle_subscriber: round(((rssIdle - rssNone) * 1024) / s.subscribers, 1),
      first_batch_answer_ms: round(burst.answerMs, 0),
      first_batch_earliest_event_ms: round(burst.earliestEventMs, 0),
      first_batch_first_event_ms: round(burst.firstEventMs, 0),
      first_batch_all_delivered_ms: round(burst.allDeliveredMs, 0),
      written_eps: round(written / seconds, 0),
      delivered_eps: round(perSubscriber.reduce((a, b) => a + b, 0), 0),
      subscriber_eps_min: round(Math.min(...perSubscriber), 0),
      subscriber_eps_median: round(median(perSubscriber), 0),
      subscriber_eps_max: round(Math.max(...perSubscriber), 0),
      // How far the furthest-behind subscriber was from the log when the measurement ended.
      max_lag_events: writtenBeforeEnd - Math.min(...after.received),
      fell_behind: fellBehind.size,
      failed_streams: failedStreams,
      ...usageFields(used),
      server_rss_mb: round(rss.stop(), 1),
    };
  } finally {
    for (const sub of subscriptions) sub.cancel();
    subscribers.close();
    appender.close();
  }
}

/**
 * One append of a batch to the idle subscribers, timed from the call: its answer, the first
 * event at the first subscriber to get one and at the median subscriber, and the last event at
 * the last subscriber. A server that stops writing while it fans a batch out shows here.
 */
async function firstBatch(
  s: FanOutSettings,
  appender: EventStoreClient,
  run: string,
  received: Float64Array,
  firstAt: Float64Array,
  lastAt: Float64Array,
): Promise<{ answerMs: number; earliestEventMs: number; firstEventMs: number; allDeliveredMs: number }> {
  const start = performance.now();
  await appender.append(`fan-out-${run}-first`, createEvents(s.eventsPerAppend, 0), undefined);
  const answerMs = performance.now() - start;
  const until = start + BATCH_TIMEOUT_MS;
  while (received.some((n) => n < s.eventsPerAppend) && performance.now() < until) await sleep(10);
  const firstEvents = Array.from(firstAt, (t) => t - start);
  return {
    answerMs,
    earliestEventMs: Math.min(...firstEvents),
    firstEventMs: median(firstEvents),
    allDeliveredMs: Math.max(...lastAt) - start,
  };
}

/** The median of five RSS samples over a second: one sample can catch a passing allocation. */
async function steadyRssMb(server: ServerProcess): Promise<number> {
  const samples: number[] = [];
  for (let k = 0; k < 5; k++) {
    if (k > 0) await sleep(200);
    samples.push(server.rssMb());
  }
  return median(samples);
}

/** The server's connections to its database, and how many of them last ran LISTEN. */
async function countConnections(url: string): Promise<{ listen: number; server: number }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ listen: number; server: number }[]>`
      select count(*) filter (where query ilike 'listen%')::int as listen,
             count(*) filter (where application_name = 'eventstore')::int as server
        from pg_stat_activity
       where datname = current_database()`;
    return row;
  } finally {
    await sql.end();
  }
}

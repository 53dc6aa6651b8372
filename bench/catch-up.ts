import type { ChannelOptions } from "@grpc/grpc-js";
import { createEventStoreClient as createSdkClient, Projector } from "../src/client";
import { EMPTY_FILTER, silentLogger } from "../src/domain";
import { openStore } from "../src/store";
import { createLiveFeed, subscribe } from "../src/subscriptions";
import type { BenchCase, BenchContext, CaseResult } from "./cases";
import { sdkToken } from "./bench-auth";
import { createEventStoreClient } from "./event-store-client";
import { createSubscribers } from "./grpc-js-subscriber";
import type { IsolatedServer } from "./isolated-server";
import { seedLog } from "./seed-log";
import { round } from "./stats";
import { startUsage, trackPeakRss, usageFields } from "./usage";

const RAW_PAGE_ROWS = 1000;
/** The server's settings for subscriptions (src/server/start-server.ts and config.ts defaults). */
const CATCH_UP_PAGE_ROWS = 500;
const QUEUE = { maxEvents: 10_000, maxBytes: 16 * 1024 * 1024 };

/**
 * One subscriber from the start of a log seeded for it, timed from the call to the caught-up
 * marker; beside it our subscription code in this process (no gRPC), and raw: postgres.js
 * reading the same rows from bench.events by position in pages of 1,000.
 */
export function catchUpCase(): BenchCase {
  return { name: "catch-up", run: (ctx) => ctx.isolation.run((env) => measure(ctx, env)) };
}

async function measure(ctx: BenchContext, env: IsolatedServer): Promise<CaseResult> {
  const events = ctx.settings.subscriptions.catchUpEvents;
  const seeding = performance.now();
  await seedLog(env.url, events);
  const seedSeconds = (performance.now() - seeding) / 1000;

  const checked = async (side: string, read: () => Promise<number>) => {
    const started = performance.now();
    const n = await read();
    const seconds = (performance.now() - started) / 1000;
    if (n !== events) throw new Error(`catch-up (${side}) received ${n} events before caught-up, expected ${events}`);
    return seconds;
  };
  const rss = trackPeakRss(env.server.rssMb);
  const usage = startUsage(env.server.pid);
  const ours = await checked("ours", () => oursCatchUp(env.server.url));
  const used = usage.stop();
  const rssMb = rss.stop();
  const wide = await checked("ours, wide window", () => oursCatchUp(env.server.url, { "grpc-node.flow_control_window": WIDE_WINDOW_BYTES }));
  // The same log through ReadAll (issue 5's "ReadAll of 1,000,000 events").
  const reader = createEventStoreClient(ctx.clientKind, env.server.url);
  const readAll = await checked("ReadAll", () => reader.readAll()).finally(() => reader.close());
  // The SDK (src/client): its subscription, and a Projector folding every event into a count
  // and persisting its record with the default cadence (every 100 events or 1 s).
  const sdk = await checked("SDK subscribe", () => sdkCatchUp(env.server.url));
  const projector = await checked("SDK projector", () => projectorCatchUp(env.server.url));
  const store = await checked("store", () => storeCatchUp(env.url));
  const rawClient = await env.raw.client();
  const raw = await checked("raw", () => rawClient.readAll(RAW_PAGE_ROWS)).finally(() => rawClient.end());
  return {
    case: "catch-up",
    clients: 1,
    events,
    ours_eps: round(events / ours, 0),
    raw_eps: round(events / raw, 0),
    store_eps: round(events / store, 0),
    ratio: round(raw / ours, 3),
    ours_wide_window_eps: round(events / wide, 0),
    ratio_wide_window: round(raw / wide, 3),
    read_all_eps: round(events / readAll, 0),
    sdk_subscribe_eps: round(events / sdk, 0),
    projector_eps: round(events / projector, 0),
    projector_to_subscribe: round(sdk / projector, 3),
    read_all_ratio: round(raw / readAll, 3),
    store_ratio: round(raw / store, 3),
    ours_s: round(ours, 2),
    store_s: round(store, 2),
    raw_s: round(raw, 2),
    seed_s: round(seedSeconds, 1),
    ...usageFields(used),
    server_rss_mb: round(rssMb, 1),
  };
}

/**
 * A grpc-js client's HTTP/2 receive window is 64 KiB unless it sets one: the server may not send
 * more until the client has read it. The wide side sets 4 MiB (`grpc-node.flow_control_window`),
 * as clients that size their window to the link (grpc-go, C-core's BDP probing) come to have.
 */
const WIDE_WINDOW_BYTES = 4 * 1024 * 1024;

/** Subscribe from the start through grpc-js; answers the events received before caught-up. */
async function oursCatchUp(url: string, channelOptions: ChannelOptions = {}): Promise<number> {
  const subscribers = createSubscribers(url, 1, channelOptions);
  let n = 0;
  const subscription = subscribers.subscribe(0, { startPoint: "START_POINT_START" }, { onEvent: () => n++ });
  try {
    await subscription.caughtUp;
    return n;
  } finally {
    subscription.cancel();
    subscribers.close();
  }
}

/** Subscribe from the start through the SDK client; answers the events received before caught-up. */
async function sdkCatchUp(url: string): Promise<number> {
  const client = createSdkClient({ url, token: sdkToken() });
  const caughtUp = new AbortController();
  let n = 0;
  try {
    for await (const _ of client.subscribe({ from: "start", signal: caughtUp.signal, onCaughtUp: () => caughtUp.abort() })) n++;
    return n;
  } finally {
    client.close();
  }
}

/** A Projector of the whole log, run until caught up; answers the events it folded. */
async function projectorCatchUp(url: string): Promise<number> {
  const client = createSdkClient({ url, token: sdkToken() });
  try {
    const projector = new Projector(client, `bench-${Date.now()}`)
      .fromAll()
      .init(() => 0)
      .whenAny((n) => n + 1);
    await projector.run({ keepRunning: false });
    return projector.state;
  } finally {
    client.close();
  }
}

/** The same through our subscription code in this process, on a store and live feed of its own. */
async function storeCatchUp(url: string): Promise<number> {
  const store = await openStore({ location: { kind: "postgres", url }, migrate: false });
  const feed = createLiveFeed({ store, log: silentLogger, pollIntervalMs: 1000, pageSize: 1000 });
  const abort = new AbortController();
  try {
    await feed.start();
    const settings = { store, feed, queue: QUEUE, pageSize: CATCH_UP_PAGE_ROWS, checkpointIntervalMs: 1000 };
    const request = { selection: { filter: EMPTY_FILTER }, start: { kind: "start" as const }, heartbeatMs: 10_000 };
    let n = 0;
    for await (const m of subscribe(settings, request, abort.signal)) {
      if (m.kind === "events") n += m.events.length;
      else if (m.kind === "caught_up") break;
    }
    return n;
  } finally {
    abort.abort();
    await feed.stop();
    await store.close();
  }
}

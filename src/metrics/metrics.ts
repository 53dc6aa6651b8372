import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

/**
 * Every metric the server exports, in Prometheus' conventions: `eventstore_` names, base units
 * (seconds, bytes), `_total` counters. Each server has its own registry, so that several in one
 * process (tests, benchmarks) count apart. The layers below the server record into these
 * directly; what is only known when scraped (lag, pool use, the age of the last notification)
 * is read by the gauges' `collect`, set by whoever owns the figure.
 */
export interface Metrics {
  readonly registry: Registry;
  rpc: {
    calls: Counter<"method" | "code">;
    duration: Histogram<"method" | "code">;
    messagesSent: Counter<"method">;
  };
  appends: {
    /** Appends (one caller's request) committed, and the events and bytes of their data. */
    committed: Counter;
    events: Counter;
    bytes: Counter;
    conflicts: Counter;
    /** The batcher's batches: appends and events in each transaction. */
    batchAppends: Histogram;
    batchEvents: Histogram;
  };
  subscriptions: {
    open: Gauge<"kind">;
    delivered: Counter<"kind">;
    fellBehind: Counter;
  };
  consumers: {
    /** Durable subscriptions and projections: how far their stored position is behind the head. */
    lagEvents: Gauge<"kind" | "name">;
    lagSeconds: Gauge<"kind" | "name">;
  };
  feed: {
    wakeups: Counter<"cause">;
    listenReconnects: Counter;
    lastNotificationAge: Gauge;
  };
  db: {
    poolSize: Gauge<"pool">;
    inUse: Gauge<"pool">;
    waiting: Gauge<"pool">;
    operationDuration: Histogram<"operation">;
    statementTimeouts: Counter;
  };
  connections: { open: Gauge };
  /** What the scrape-time gauges read; each set by the part that owns the figure. */
  sources: MetricSources;
}

export interface MetricSources {
  consumerLag?: () => Promise<ConsumerLag[]>;
  /** When (performance.now()) the last notification came, if one has. */
  lastNotificationAt?: () => number | undefined;
  openConnections?: () => number;
  /** Each pool's operations holding a connection and waiting for one, now. */
  pools?: Map<string, () => { inUse: number; waiting: number }>;
}

/** A durable subscription's or projection's distance from the head. */
export interface ConsumerLag {
  kind: "subscription" | "projection";
  name: string;
  events: number;
  seconds: number;
}

/** Why the live feed read the log. */
export type WakeCause = "notify" | "local" | "poll" | "reconnect";

export interface MetricsOptions {
  /** Told when a scrape-time figure cannot be read (the other metrics are still served). */
  onCollectError?: (what: string, error: unknown) => void;
  /** Node's process metrics too (heap, RSS, event-loop lag, ...): once per process is enough. */
  process?: boolean;
}

// From a fast append (~1 ms) to a subscription that lasted a day.
const CALL_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600, 86400];
const QUERY_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  const sources: MetricSources = {};
  // Both lag gauges come from one query a scrape: prom-client starts every metric's collect
  // before it awaits any, so the second finds the first's query in flight.
  let lag: Promise<ConsumerLag[]> | undefined;
  // A failed query leaves the lag series out of this scrape, not every metric with them.
  const readLag = () => {
    lag ??= (sources.consumerLag?.() ?? Promise.resolve([]))
      .catch((e: unknown) => {
        options.onCollectError?.("consumer lag", e);
        return [];
      })
      .finally(() => (lag = undefined));
    return lag;
  };
  const registers = [registry];
  if (options.process) collectDefaultMetrics({ register: registry });
  const counter = <L extends string = never>(name: string, help: string, labelNames: L[] = []) => new Counter<L>({ name, help, labelNames, registers });
  const gauge = <L extends string = never>(name: string, help: string, labelNames: L[] = [], collect?: (this: Gauge<L>) => void | Promise<void>) =>
    new Gauge<L>({ name, help, labelNames, registers, collect });
  const histogram = <L extends string = never>(name: string, help: string, buckets: number[], labelNames: L[] = []) =>
    new Histogram<L>({ name, help, buckets, labelNames, registers });
  return {
    registry,
    rpc: {
      calls: counter("eventstore_rpc_calls_total", "Calls ended, by method (the gRPC path) and status code", ["method", "code"]),
      duration: histogram("eventstore_rpc_duration_seconds", "Time from a call's headers to its end", CALL_SECONDS, ["method", "code"]),
      messagesSent: counter("eventstore_rpc_messages_sent_total", "Response messages sent", ["method"]),
    },
    appends: {
      committed: counter("eventstore_appends_total", "Appends committed (a replayed idempotent retry is not counted)"),
      events: counter("eventstore_events_written_total", "Events written"),
      bytes: counter("eventstore_event_bytes_written_total", "Bytes of event data written"),
      conflicts: counter("eventstore_append_conflicts_total", "Appends refused with WRONG_EXPECTED_REVISION"),
      batchAppends: histogram("eventstore_append_batch_appends", "Appends the batcher wrote in one transaction", BATCH_SIZES),
      batchEvents: histogram("eventstore_append_batch_events", "Events the batcher wrote in one transaction", BATCH_SIZES),
    },
    subscriptions: {
      open: gauge("eventstore_subscriptions_open", "Subscriptions open on this server, by kind (plain, durable, consumer_group)", ["kind"]),
      delivered: counter("eventstore_subscription_events_delivered_total", "Events sent to subscribers", ["kind"]),
      fellBehind: counter("eventstore_subscriptions_fell_behind_total", "Times a subscriber's buffer overflowed and it went back to reading storage"),
    },
    consumers: {
      lagEvents: gauge("eventstore_consumer_lag_events", "Log positions between a durable subscription's or projection's stored position and the head", ["kind", "name"], async function () {
        const rows = await readLag();
        this.reset();
        for (const r of rows) this.set({ kind: r.kind, name: r.name }, r.events);
      }),
      lagSeconds: gauge("eventstore_consumer_lag_seconds", "Age of the oldest event after a durable subscription's or projection's stored position (0 when at the head)", ["kind", "name"], async function () {
        const rows = await readLag();
        this.reset();
        for (const r of rows) this.set({ kind: r.kind, name: r.name }, r.seconds);
      }),
    },
    feed: {
      wakeups: counter("eventstore_feed_wakeups_total", "Reads of the log by the live feed, by what woke it (notify, local, poll, reconnect)", ["cause"]),
      listenReconnects: counter("eventstore_feed_listen_reconnects_total", "Times the LISTEN connection was lost and opened again"),
      lastNotificationAge: gauge("eventstore_feed_last_notification_age_seconds", "Time since the LISTEN connection last received a notification, probes included (absent before the first)", [], function () {
        const at = sources.lastNotificationAt?.();
        if (at === undefined) this.reset();
        else this.set((performance.now() - at) / 1000);
      }),
    },
    db: {
      poolSize: gauge("eventstore_db_pool_connections", "Connections of each pool (write, read)", ["pool"]),
      inUse: gauge("eventstore_db_pool_in_use", "Store operations holding a connection of the pool", ["pool"], function () {
        for (const [pool, read] of sources.pools ?? []) this.set({ pool }, read().inUse);
      }),
      waiting: gauge("eventstore_db_pool_waiting", "Store operations waiting for a connection of the pool (not those waiting for a scan slot)", ["pool"], function () {
        for (const [pool, read] of sources.pools ?? []) this.set({ pool }, read().waiting);
      }),
      operationDuration: histogram("eventstore_db_operation_duration_seconds", "Time of each store operation in the database, its wait for a connection included", QUERY_SECONDS, ["operation"]),
      statementTimeouts: counter("eventstore_db_statement_timeouts_total", "Statements ended by the statement timeout"),
    },
    connections: {
      open: gauge("eventstore_connections_open", "Client connections open", [], function () {
        this.set(sources.openConnections?.() ?? 0);
      }),
    },
    sources,
  };
}

import {
  DEFAULT_LIMITS,
  validateAppends,
  validateFilter,
  validateStreamName,
  validateSubscriptionName,
  type Limits,
  type Logger,
} from "../../domain";
import { createMetrics, type Metrics } from "../../metrics";
import type { CommitWatcher, EventStore } from "../event-store";
import { appendBatch } from "./append";
import { createAppendBatcher } from "./append-batcher";
import { commitCheckpoint, getCheckpoint } from "./checkpoints";
import { listenForCommits, type OpenListenConnection } from "./commit-listener";
import type { Cancellation } from "./cancellable";
import { guard as guardWith, toEventStoreError } from "./database-error";
import { createPostgresProjectionStore } from "./create-postgres-projection-store";
import { consumerLag } from "./consumer-lag";
import { createPoolMeter } from "./pool-meter";
import { resolveLinks } from "./resolve-links";
import { migrate } from "./migrate";
import { readAfter } from "./read-after";
import { readAll } from "./read-all";
import { readStream, type PageSettings } from "./read-stream";
import type { Sql } from "./sql";
import { deleteStream, getStream, listStreams } from "./streams";

export interface PostgresStoreOptions {
  sql: Sql;
  /**
   * The connections of reads, which are cancelled when their callers go away: a cancel request
   * reaches a connection, not a statement, and one that arrives as its statement ends stops the
   * connection's next one. On connections of their own, such a stray cancel can only ever stop
   * another read (which answers UNAVAILABLE, to be retried), never an append; and however many
   * reads run, appends always have connections. Unset: `sql`.
   */
  readSql?: Sql;
  limits?: Limits;
  page?: Partial<PageSettings>;
  /** Called by close(), to release what the caller started with the store (an embedded database). */
  onClose?: () => Promise<void>;
  /**
   * Opens the LISTEN connection. Unset when notifications cannot reach this process: PGlite's
   * socket does not carry them, and in embedded mode this process is the only writer, so its
   * own commits are all the wake-ups its subscribers need.
   */
  openListenConnection?: OpenListenConnection;
  /** How often the LISTEN connection is proven alive. */
  listenProbeIntervalMs?: number;
  log?: Logger;
  /** The statement timeout the connections were opened with (see sql.ts), named in its errors. */
  statementTimeoutMs?: number;
  /**
   * Whether a statement in flight can be cancelled when its caller goes away (the default);
   * false on PGlite, which ignores cancel requests (see cancellable.ts).
   */
  cancelInFlight?: boolean;
  /** Where the store counts its appends and its operations in the database. */
  metrics?: Metrics;
  /** The pools' connections, for the metrics (`sql`, `readSql`). */
  poolSizes?: { write: number; read: number };
  /** An operation that takes longer in the database is logged at warn; 0 or unset: never. */
  slowQueryMs?: number;
}

const DEFAULT_PAGE: PageSettings = { pageBytes: 4 * 1024 * 1024, maxPageRows: 1000 };

/**
 * The PostgreSQL store: validates every input against the domain rules, runs the operation,
 * and translates every database failure into the store's errors.
 */
export function createPostgresStore(options: PostgresStoreOptions): EventStore {
  const { sql } = options;
  const readSql = options.readSql ?? sql;
  const limits = options.limits ?? DEFAULT_LIMITS;
  const page = { ...DEFAULT_PAGE, ...options.page };
  const watchers = new Set<CommitWatcher>();
  const errors = { statementTimeoutMs: options.statementTimeoutMs || undefined };
  const guard = <T>(work: () => T | Promise<T>, signal?: AbortSignal) => guardWith(work, { ...errors, signal });
  const metrics = options.metrics ?? createMetrics();
  const slow = { log: options.log, slowMs: options.slowQueryMs ?? 0 };
  const scansWaiting = () => page.scanSlots?.waiting ?? 0;
  const writes = createPoolMeter(metrics, "write", options.poolSizes?.write ?? 1, slow, readSql === sql ? scansWaiting : undefined);
  // One pool (PGlite's single connection): both kinds of operation count against it.
  const reads = readSql === sql ? writes : createPoolMeter(metrics, "read", options.poolSizes?.read ?? 1, slow, scansWaiting);
  const cancellation = (signal?: AbortSignal): Cancellation | undefined =>
    signal && { signal, cancelInFlight: options.cancelInFlight ?? true };
  // Validation runs inside the guard, so that bad input surfaces where the caller awaits. A
  // read whose caller has gone ends there, whatever its last statement answered.
  async function* guardIterable<T>(source: () => AsyncIterable<T>, signal?: AbortSignal): AsyncGenerator<T> {
    try {
      yield* source();
    } catch (e) {
      if (signal?.aborted) return;
      throw toEventStoreError(e, errors);
    }
  }
  // A batch is never larger than the largest single append may be.
  const batcher = createAppendBatcher({
    run: (batch) => writes.run("append", () => appendBatch(sql, batch)),
    metrics: metrics.appends,
    errorContext: errors,
    maxEvents: limits.maxAppendEvents,
    maxBytes: limits.maxAppendBytes,
    // Wake this process's subscribers at once; other servers hear the NOTIFY.
    onCommit: (last) => {
      for (const w of watchers) w.onCommit(last, "local");
    },
  });
  return {
    append: (appends, signal) =>
      guard(async () => {
        validateAppends(appends, limits);
        return batcher.append(appends, signal);
      }, signal),
    readStream: (stream, opts, signal) =>
      guardIterable(() => {
        validateStreamName(stream);
        return reads.pages("read_stream", readStream(readSql, stream, opts, page, cancellation(signal)));
      }, signal),
    readAll: (opts, signal) =>
      guardIterable(() => {
        validateFilter(opts.filter, limits);
        return reads.pages("read_all", readAll(readSql, opts, page, cancellation(signal)));
      }, signal),
    listStreams: (opts) => guard(() => writes.run("list_streams", () => listStreams(sql, opts))),
    getStream: (stream) =>
      guard(() => {
        validateStreamName(stream);
        return writes.run("get_stream", () => getStream(sql, stream));
      }),
    deleteStream: (stream, expected, mode) =>
      guard(() => {
        validateStreamName(stream);
        return writes.run("delete_stream", () => deleteStream(sql, stream, expected, mode));
      }),
    readAfter: (selection, after, limit, signal) =>
      guard(() => {
        validateFilter(selection.filter, limits);
        return reads.run("read_after", () => readAfter(readSql, selection, after, limit, page, cancellation(signal)));
      }, signal),
    head: () => guard(() => writes.run("head", async () => (await sql<{ position: bigint }[]>`select position from eventstore.log`)[0].position)),
    positionOf: (stream, revision) =>
      guard(() =>
        writes.run("position_of", async () => {
          const [row] = await sql<{ position: bigint }[]>`
            select position from eventstore.events where stream = ${stream} and revision = ${revision}`;
          return row?.position;
        }),
      ),
    resolveLinks: (events) => guard(() => writes.run("resolve_links", () => resolveLinks(sql, events))),
    projections: createPostgresProjectionStore(sql, limits, errors),
    commitCheckpoint: (name, position) =>
      guard(() => {
        validateSubscriptionName(name);
        return writes.run("commit_checkpoint", () => commitCheckpoint(sql, name, position));
      }),
    getCheckpoint: (name) =>
      guard(() => {
        validateSubscriptionName(name);
        return writes.run("get_checkpoint", () => getCheckpoint(sql, name));
      }),
    watch: (watcher) =>
      guard(async () => {
        watchers.add(watcher);
        if (!options.openListenConnection) {
          watcher.onConnected();
          return async () => void watchers.delete(watcher);
        }
        const stop = await listenForCommits(watcher, {
          open: options.openListenConnection,
          sql,
          probeIntervalMs: options.listenProbeIntervalMs ?? 10_000,
          onWarning: (message, fields) => options.log?.warn(message, fields),
          metrics,
        });
        return async () => {
          watchers.delete(watcher);
          await stop();
        };
      }),
    consumerLag: (limit) => guard(() => reads.run("consumer_lag", () => consumerLag(readSql, limit))),
    ping: () => guard(async () => void (await sql`select 1`)),
    close: async () => {
      // By now the server has let in-flight calls finish; a connection still open after a
      // second is one postgres.js kept from a failed connect during an outage.
      await Promise.all([sql.end({ timeout: 1 }), readSql === sql ? undefined : readSql.end({ timeout: 1 })]);
      await options.onClose?.();
    },
  };
}

/** Applies pending migrations, translating failures like every other store call. */
export async function migrateStore(sql: Sql): Promise<number[]> {
  try {
    return await migrate(sql);
  } catch (e) {
    throw toEventStoreError(e);
  }
}

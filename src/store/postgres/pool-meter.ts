import type { Logger } from "../../domain";
import type { Metrics } from "../../metrics";
import { isStatementTimeout } from "./database-error";

/**
 * Counts the store's operations on one pool while they are in the database: a connection is
 * held by each while it runs, and those past the pool's size wait for one (postgres.js queues
 * them, or pipelines them behind a busy connection's statement). postgres.js keeps its
 * connections' states to itself, so the figures are the store's: an operation that holds one
 * connection at a time, timed from when it asks to when it has its rows (a read's wait for a
 * scan slot included in its time, not in the pool's waits), and a read counted page by page,
 * not while its caller holds the pages.
 */
export interface PoolMeter {
  run<T>(operation: string, work: () => Promise<T>): Promise<T>;
  /** `source`, with each page's pull counted as one operation. */
  pages<T>(operation: string, source: AsyncIterable<T>): AsyncGenerator<T>;
}

/** Operations slower than `slowMs` (0: none) are logged at warn. */
export interface SlowOperations {
  log?: Logger;
  slowMs: number;
}

/**
 * `queued` counts the operations in flight that wait for something else than a connection
 * (a scan slot): they hold none, and do not wait for one yet.
 */
export function createPoolMeter(metrics: Metrics, pool: "write" | "read", size: number, slow: SlowOperations = { slowMs: 0 }, queued: () => number = () => 0): PoolMeter {
  let inFlight = 0;
  metrics.db.poolSize.set({ pool }, size);
  // Read when scraped: an operation counts nothing here but its own coming and going.
  (metrics.sources.pools ??= new Map()).set(pool, () => {
    const asking = Math.max(0, inFlight - queued());
    return { inUse: Math.min(asking, size), waiting: Math.max(0, asking - size) };
  });
  const durations = new Map<string, ReturnType<Metrics["db"]["operationDuration"]["labels"]>>();
  async function run<T>(operation: string, work: () => Promise<T>): Promise<T> {
    let duration = durations.get(operation);
    if (!duration) durations.set(operation, (duration = metrics.db.operationDuration.labels({ operation })));
    const start = performance.now();
    inFlight++;
    try {
      return await work();
    } catch (e) {
      if (isStatementTimeout(e)) metrics.db.statementTimeouts.inc();
      throw e;
    } finally {
      inFlight--;
      const ms = performance.now() - start;
      duration.observe(ms / 1000);
      if (slow.slowMs > 0 && ms > slow.slowMs) slow.log?.warn("slow database operation", { operation, pool, ms: Math.round(ms), slowQueryMs: slow.slowMs });
    }
  }
  return {
    run,
    async *pages(operation, source) {
      const iterator = source[Symbol.asyncIterator]();
      try {
        for (;;) {
          const next = await run(operation, () => iterator.next());
          if (next.done) return;
          yield next.value;
        }
      } finally {
        await iterator.return?.();
      }
    },
  };
}

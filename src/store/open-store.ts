import { DEFAULT_LIMITS, type Limits, type Logger } from "../domain";
import type { Metrics } from "../metrics";
import type { EventStore } from "./event-store";
import { startEmbeddedDatabase } from "./embedded-database";
import { createPostgresStore, migrateStore } from "./postgres/create-postgres-store";
import { createScanSlots, DEFAULT_MAX_CONCURRENT_SCANS } from "./postgres/scan-slots";
import { connect } from "./postgres/sql";

export type StoreLocation =
  /** A PostgreSQL server: the production mode, shareable by several servers. */
  | { kind: "postgres"; url: string; poolSize?: number }
  /** PGlite in this process, durable in a data directory, or in memory. */
  | { kind: "embedded"; dataDir: string | "memory" };

export interface OpenStoreOptions {
  location: StoreLocation;
  limits?: Limits;
  log?: Logger;
  /** How often the LISTEN connection is proven alive (PostgreSQL only). */
  listenProbeIntervalMs?: number;
  /** Apply pending migrations first (the default). */
  migrate?: boolean;
  /**
   * The longest any one SQL statement may run, in milliseconds; 0: no limit. Migrations are
   * exempt (see migrate.ts).
   */
  statementTimeoutMs?: number;
  /** The most log positions one filtered read statement scans (see scan-window.ts). */
  scanWindow?: number;
  /** The most filtered log scans in the database at once, all callers together (see scan-slots.ts). */
  maxConcurrentScans?: number;
  /** Where the store counts its work (the server's registry). */
  metrics?: Metrics;
  /** A store operation that takes longer in the database is logged at warn; 0: never. */
  slowQueryMs?: number;
}

export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
export const DEFAULT_POOL_SIZE = 10;

/**
 * The pool's connections between reads (catch-up, ReadAll, ReadStream, the live feed) and
 * everything else (appends, which are batched and need few, deletes, checkpoints, projections):
 * a quarter, at least one, for the writes; the rest, at least one, for reads.
 */
export function splitPool(size: number): { writes: number; reads: number } {
  const writes = Math.max(1, Math.ceil(size / 4));
  return { writes, reads: Math.max(1, size - writes) };
}
export { DEFAULT_SCAN_WINDOW } from "./postgres/scan-window";
export { DEFAULT_MAX_CONCURRENT_SCANS } from "./postgres/scan-slots";

/** Opens the store where the configuration says, migrated and ready. */
export async function openStore(options: OpenStoreOptions): Promise<EventStore> {
  const { location } = options;
  const statementTimeoutMs = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const maxScans = options.maxConcurrentScans ?? DEFAULT_MAX_CONCURRENT_SCANS;
  if (location.kind === "postgres") {
    const { writes, reads } = splitPool(location.poolSize ?? DEFAULT_POOL_SIZE);
    // Scans leave a read connection free, where they can, for the reads that do not wait for a
    // slot: the live feed's, above all, which every subscriber's delivery waits for.
    const scans = Math.max(1, Math.min(maxScans, reads - 1));
    if (scans < maxScans) options.log?.warn("fewer concurrent scans than configured: one read connection is kept from them", { maxConcurrentScans: maxScans, scans, readConnections: reads });
    const page = { scanWindow: options.scanWindow, scanSlots: createScanSlots(scans) };
    const sql = connect({ url: location.url, max: writes, statementTimeoutMs });
    if (options.migrate !== false) await migrateOrClose(sql);
    return createPostgresStore({
      sql,
      readSql: connect({ url: location.url, max: reads, statementTimeoutMs }),
      limits: options.limits ?? DEFAULT_LIMITS,
      page,
      // A session waiting for notifications runs no statement: the timeout never ends it.
      openListenConnection: (handlers) => connect({ url: location.url, max: 1, statementTimeoutMs, ...handlers }),
      listenProbeIntervalMs: options.listenProbeIntervalMs,
      log: options.log,
      statementTimeoutMs,
      metrics: options.metrics,
      poolSizes: { write: writes, read: reads },
      slowQueryMs: options.slowQueryMs,
    });
  }
  // PGlite takes statement_timeout and ignores it (no timer can interrupt WebAssembly on this
  // process's one thread), and ignores cancel requests: it is not given them. What bounds a
  // statement here is what it may cost: page sizes and the filter limits.
  const page = { scanWindow: options.scanWindow, scanSlots: createScanSlots(maxScans) };
  const db = await startEmbeddedDatabase(location.dataDir);
  const sql = connect({ path: db.socketPath, max: 1 });
  try {
    if (options.migrate !== false) await migrateStore(sql);
  } catch (e) {
    await sql.end({ timeout: 1 });
    await db.stop();
    throw e;
  }
  return createPostgresStore({
    sql,
    limits: options.limits ?? DEFAULT_LIMITS,
    page,
    log: options.log,
    onClose: () => db.stop(),
    cancelInFlight: false,
    metrics: options.metrics,
    poolSizes: { write: 1, read: 1 },
    slowQueryMs: options.slowQueryMs,
  });
}

async function migrateOrClose(sql: ReturnType<typeof connect>) {
  try {
    await migrateStore(sql);
  } catch (e) {
    await sql.end({ timeout: 1 });
    throw e;
  }
}

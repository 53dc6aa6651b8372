import postgres from "postgres";

/** A postgres.js connection (or transaction) whose int8 values are bigints. */
export type Sql = postgres.Sql<{ bigint: bigint }>;

export interface ConnectOptions {
  /** A postgres:// URL. */
  url?: string;
  /** A Unix socket path (the embedded server). */
  path?: string;
  /** Pool size. */
  max?: number;
  /**
   * PostgreSQL ends any statement of these connections that runs longer (SQLSTATE 57014); 0 or
   * unset: no limit. Sent as a startup parameter, so it holds from the first statement of every
   * connection, reconnections included. (PGlite accepts it and ignores it: see open-store.ts.)
   */
  statementTimeoutMs?: number;
  /** A LISTEN connection: never closed for idleness or age. */
  onnotify?: (channel: string, payload: string) => void;
  onclose?: () => void;
}

export function connect(options: ConnectOptions): Sql {
  const settings = {
    max: options.max ?? 10,
    // Fail fast when the database is down: the caller answers UNAVAILABLE and the pool
    // reconnects on the next query once it is back.
    connect_timeout: 5,
    // postgres.js waits backoff(n) seconds before reconnecting, n counting every failed connect of
    // the pool since the last success; its default reaches 10-20 s after a one-second outage, and
    // every query waits that long once the database is back. Cap it at one second.
    backoff: (retries: number) => Math.min(0.05 * 2 ** retries, 1),
    idle_timeout: 60,
    onnotice: () => {},
    types: { bigint: postgres.BigInt },
    connection: {
      application_name: "eventstore",
      ...(options.statementTimeoutMs ? { statement_timeout: options.statementTimeoutMs } : {}),
    },
    ...(options.onnotify ? { onnotify: options.onnotify, idle_timeout: undefined, max_lifetime: null } : {}),
    ...(options.onclose ? { onclose: options.onclose } : {}),
  };
  const sql = options.path
    ? postgres({ ...settings, path: options.path, database: "postgres", username: "postgres" })
    : postgres(options.url ?? "", settings);
  return sql as unknown as Sql;
}

import { randomUUID } from "node:crypto";
import postgres from "postgres";
import type { EventFilter } from "../../src/domain";
import type { EventStore } from "../../src/store";
import { adminUrl } from "./postgres-url";

const CHUNK = 10_000;

/**
 * Writes `count` small events through the store, in multi-event appends of 10,000 (one
 * statement each), spread over streams `load-0`, `load-1`, ...; each carries a `tenant` in its
 * metadata, t0..t99.
 */
export async function writeLog(store: EventStore, count: number): Promise<void> {
  const data = new TextEncoder().encode('{"n":1}');
  for (let done = 0, chunk = 0; done < count; done += CHUNK, chunk++) {
    const events = Array.from({ length: Math.min(CHUNK, count - done) }, (_, i) => ({
      id: randomUUID(),
      type: "Loaded",
      contentType: "application/json",
      data,
      metadata: { tenant: `t${i % 100}` },
    }));
    await store.append([{ stream: `load-${chunk}`, expected: "any", events }]);
  }
}

/** The values of the filter below, none of them a stored tenant. */
export const NO_TENANTS = Array.from({ length: 99 }, (_, i) => `nobody-${i}`);

/**
 * A legal filter that matches nothing and costs PostgreSQL about 19 µs an event here (measured:
 * 3.8 s over 200,000 events): `in` with 99 short values (the most a filter may hold, with its matcher) compiles to a semi join that compares
 * each event's metadata with every value, and matching nothing, it scans the whole log.
 */
export const COSTLY_FILTER: EventFilter = {
  eventTypes: [],
  matchers: [{ field: { metadataKey: "tenant" }, operator: "in", values: NO_TENANTS }],
};

export interface ActiveStatement {
  pid: number;
  query: string;
  startedAt: Date;
}

/** Sees the statements running in one database, from another connection. */
export function watchActivity(database: string) {
  const sql = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  return {
    /** The statements of `database` running now whose text contains `marker`. */
    async active(marker: string): Promise<ActiveStatement[]> {
      const rows = await sql<{ pid: number; query: string; query_start: Date }[]>`
        select pid, query, query_start from pg_stat_activity
         where datname = ${database} and state = 'active' and pid <> pg_backend_pid()
           and position(${marker} in query) > 0`;
      return rows.map((r) => ({ pid: r.pid, query: r.query, startedAt: r.query_start }));
    },
    sql,
    close: () => sql.end({ timeout: 1 }),
  };
}

/** Text that is in the costly filter's SQL and in no other statement of the store. */
export const COSTLY_MARKER = "jsonb_array_elements";

import { randomBytes, randomUUID } from "node:crypto";
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
 * Writes `count` events of about 50 KB of metadata each (`blob`, random, so stored out of line
 * and read again by every comparison), in stream `costly-1`, for COSTLY_FILTER.
 */
export async function writeCostlyLog(store: EventStore, count = COSTLY_EVENTS): Promise<void> {
  const data = new TextEncoder().encode("{}");
  for (let done = 0; done < count; done += 100) {
    const events = Array.from({ length: Math.min(100, count - done) }, () => ({
      id: randomUUID(),
      type: "Costly",
      contentType: "application/json",
      data,
      metadata: { tenant: "t0", blob: randomBytes(36_000).toString("base64") },
    }));
    await store.append([{ stream: "costly-1", expected: "any", events }]);
  }
}

/** Enough events for seconds of the costly filter's work in one statement here. */
export const COSTLY_EVENTS = 400;

/**
 * A legal filter that matches nothing and keeps one statement busy for seconds over the costly
 * log, well inside one scan window: 30 comparisons of the 50 KB `blob`, all true, each of which
 * reads it again, then one that fails (nothing is below ""). PostgreSQL notices a cancel
 * between rows, so a row must cost little (about 10 ms here) for a cancel to act at once. (A
 * sparse filter over many small events no longer makes a long statement: reads scan the log a
 * window at a time, and `in` lists are hashed.)
 */
export const COSTLY_FILTER: EventFilter = {
  eventTypes: [],
  matchers: [
    ...Array.from({ length: 30 }, () => ({ field: { metadataKey: "blob" }, operator: "gt" as const, value: "" })),
    // As costly as the others: PostgreSQL runs cheaper conditions first.
    { field: { metadataKey: "blob" }, operator: "lt", value: "" },
  ],
};

/**
 * How long the costly filter's first statement runs to its end, uncancelled, now: what a cancel
 * must beat. Timing bounds on a cancel are held to a share of it, so that a machine busy with
 * other suites (where a row, and the cancel's round trip, cost more) slows both alike. A copy
 * of the filter, so that the window the read adapts to is not the one later reads start with.
 */
export async function uncancelledCostlyMs(store: EventStore): Promise<number> {
  const started = performance.now();
  await store.readAfter({ filter: { ...COSTLY_FILTER } }, 0n, 1000);
  return performance.now() - started;
}

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

/** Text that is in the costly filter's SQL (its ordered comparisons) and in no other statement of the store. */
export const COSTLY_MARKER = "jsonb_typeof";

import type { PendingQuery, Row } from "postgres";

/** A caller's signal, and whether the database can be asked to stop a statement in flight. */
export interface Cancellation {
  signal: AbortSignal;
  /**
   * False on PGlite: its socket ignores cancel requests and keeps each one's connection open
   * (the fourth fills its connection limit, and later ones fail with EPIPE), and it could not
   * act on one anyway: a statement runs to its end on this process's only thread. There the
   * signal is checked between statements only.
   */
  cancelInFlight: boolean;
}

/**
 * Runs `query` unless the caller has already gone, and cancels it in the database the moment
 * the signal aborts: the statement stops at once (PostgreSQL answers 57014) rather than running
 * on for a caller who no longer waits. Rejects with the signal's reason once it has aborted, so
 * the caller sees why it stopped and not the database's side of it, even when the statement
 * ended before the cancel reached it: a read is used for nothing by a caller who has gone, and
 * whether it ends with rows or with the reason should not depend on that race. (Reads only: an
 * append that committed must say so.)
 *
 * A cancel request reaches a connection, not a statement: one that arrives after the statement
 * ended and the connection began another would stop that one instead. postgres.js only sends
 * it while the statement is still the connection's current one, which leaves a window of one
 * round trip on a new connection; the statement it hits fails (57014, "user request") and
 * writes nothing.
 */
export async function cancellable<T extends readonly Row[]>(query: PendingQuery<T>, cancellation: Cancellation | undefined): Promise<T> {
  if (!cancellation) return await query;
  const { signal } = cancellation;
  // postgres.js sends a query when it is first awaited: this one never leaves the process.
  if (signal.aborted) throw signal.reason;
  const onAbort = () => {
    if (cancellation.cancelInFlight) cancel(query);
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const rows = await query;
    if (signal.aborted) throw signal.reason;
    return rows;
  } catch (e) {
    throw signal.aborted ? signal.reason : e;
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

type WithCanceller = { canceller?: ((query: unknown) => Promise<void>) | null };

/**
 * Asks the database to stop `query`, best effort. postgres.js 3.4's `query.cancel()` drops the
 * promise of its cancel request, and that promise rejects when the database cannot be reached
 * (ECONNREFUSED, EPIPE): an unhandled rejection, which ends a Node process. The canceller it
 * wraps returns that promise, so it is called here and its failure ignored: a cancel that does
 * not arrive leaves the statement to the statement timeout.
 */
function cancel<T extends readonly Row[]>(query: PendingQuery<T>): void {
  const q = query as unknown as WithCanceller;
  const canceller = q.canceller;
  if (typeof canceller !== "function") return void query.cancel();
  q.canceller = null;
  canceller(query).catch(() => {});
}

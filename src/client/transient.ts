import { Code } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { EventStoreClientError, UnavailableError } from "./errors";

/**
 * The server may be back soon: it is unavailable, or the call was cut (a reset connection, a
 * timeout) before it answered. Our server's own refusals carry a reason and are never transient.
 */
export function isTransient(e: unknown): boolean {
  if (e instanceof UnavailableError) return true;
  return e instanceof EventStoreClientError && e.reason === "" && TRANSIENT_CODES.has(e.code);
}

const TRANSIENT_CODES = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.Aborted, Code.DeadlineExceeded]);

/** Retries a call while the server is away (restarting, unreachable), for about half a minute. */
export async function retryWhileAway<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (e) {
      if (!isTransient(e) || attempt >= 20) throw e;
      await sleep(Math.min(100 * 2 ** attempt, 2000));
    }
  }
}

import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { ERROR_DOMAIN } from "../api/connect-error";
import type { RequestSize } from "./request-size-limits";

/**
 * The request bytes the whole server holds at once for calls whose request is still arriving:
 * each request is bounded by readMaxBytes and by the body timeout, but many slow ones together
 * are bounded only by this. Every place that gathers a request's bytes takes them from here as
 * they arrive, and gives them back once the request is parsed or the call is over.
 */
export interface RequestBudget {
  readonly maxBytes: number;
  /** Held now, by every call together. */
  readonly heldBytes: number;
  /** What one more chunk may take now. */
  readonly availableBytes: number;
  /** A call's share of the budget, empty. */
  open(): RequestBudgetHold;
}

/** One call's share. */
export interface RequestBudgetHold {
  readonly budget: RequestBudget;
  /** What this call holds now. */
  readonly bytes: number;
  /** Counts `bytes` as held; false, counting nothing, if the budget has not room for them. */
  take(bytes: number): boolean;
  /** Counts a chunk of `size` bytes as held, with its overhead: take(size + CHUNK_OVERHEAD_BYTES). */
  takeChunk(size: number): boolean;
  /** Gives back all this call holds beyond `bytes` (a stream's messages that were parsed). */
  keep(bytes: number): void;
  /** Gives back everything, for good: a hold closed counts nothing more. Safe to call again. */
  close(): void;
}

/**
 * What a chunk costs beyond its bytes: a Buffer, its backing store and its place in a list. A
 * 1-byte HTTP/2 DATA frame held as a chunk took 300-800 bytes of RSS here (Node 20), so a budget
 * of bytes alone let a client that sends tiny frames hold hundreds of times what it was counted.
 */
export const CHUNK_OVERHEAD_BYTES = 512;

export function createRequestBudget(maxBytes: number): RequestBudget {
  let held = 0;
  const budget: RequestBudget = {
    maxBytes,
    get heldBytes() {
      return held;
    },
    get availableBytes() {
      return maxBytes - held;
    },
    open() {
      let bytes = 0;
      let closed = false;
      const take = (cost: number) => {
        if (closed) return true;
        if (held + cost > maxBytes) return false;
        held += cost;
        bytes += cost;
        return true;
      };
      return {
        budget,
        get bytes() {
          return bytes;
        },
        take,
        takeChunk: (size) => take(size + CHUNK_OVERHEAD_BYTES),
        keep(keep) {
          if (keep >= bytes) return;
          held -= bytes - keep;
          bytes = keep;
        },
        close() {
          held -= bytes;
          bytes = 0;
          closed = true;
        },
      };
    },
  };
  return budget;
}

/**
 * The answer to a call whose request would take the server past its budget: RESOURCE_EXHAUSTED,
 * as every limit answers, with an ErrorInfo naming the setting. `value` is this call's own
 * bytes (never what other calls hold). The call may succeed later, when others have finished.
 */
export function requestBudgetExceeded(maxBytes: number, value: number): ConnectError {
  return requestLimitExceeded(
    `request: the server holds as many request bytes as it may (${maxBytes}, --max-buffered-request-bytes) for calls still arriving; try again later`,
    { limit: String(maxBytes), value: String(value), setting: "max-buffered-request-bytes" },
  );
}

/**
 * The answer to a request message larger than its method takes, refused from its length:
 * RESOURCE_EXHAUSTED with an ErrorInfo naming the setting, as every limit answers.
 */
export function messageTooLarge(size: number, limit: RequestSize): ConnectError {
  return requestLimitExceeded(
    `request: a message of ${size} bytes is larger than this method takes (${limit.maxBytes}, from --${limit.setting})`,
    { limit: String(limit.maxBytes), value: String(size), setting: limit.setting },
  );
}

/** The answer to a compressed request message that inflates past what its method takes. */
export function inflatedTooLarge(limit: RequestSize): ConnectError {
  return requestLimitExceeded(
    `request: a message inflates past what this method takes (${limit.maxBytes} bytes, from --${limit.setting})`,
    { limit: String(limit.maxBytes), value: `more than ${limit.maxBytes}`, setting: limit.setting },
  );
}

/** RESOURCE_EXHAUSTED with the ErrorInfo of a request limit: LIMIT_EXCEEDED on field `request`. */
function requestLimitExceeded(message: string, metadata: { limit: string; value: string; setting: string }): ConnectError {
  return new ConnectError(message, Code.ResourceExhausted, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "LIMIT_EXCEEDED", domain: ERROR_DOMAIN, metadata: { field: "request", ...metadata } } },
  ]);
}

import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { isEventStoreError, type EventStoreErrorKind, type Logger } from "../domain";

export const ERROR_DOMAIN = "eventstore.v1";

const CODES: Record<EventStoreErrorKind, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  WRONG_EXPECTED_REVISION: Code.Aborted,
  STREAM_NOT_FOUND: Code.NotFound,
  STREAM_DELETED: Code.NotFound,
  STREAM_TOMBSTONED: Code.FailedPrecondition,
  DUPLICATE_EVENT_ID: Code.AlreadyExists,
  EVENT_ID_REUSED: Code.AlreadyExists,
  LIMIT_EXCEEDED: Code.ResourceExhausted,
  STATEMENT_TIMEOUT: Code.ResourceExhausted,
  PROJECTION_NOT_FOUND: Code.NotFound,
  PROJECTION_EXISTS: Code.AlreadyExists,
  WRONG_EXPECTED_VERSION: Code.Aborted,
  WRONG_EXPECTED_STATUS: Code.Aborted,
  LEASE_HELD: Code.FailedPrecondition,
  CHECKPOINT_PAST_HEAD: Code.FailedPrecondition,
  UNAVAILABLE: Code.Unavailable,
  UNAUTHENTICATED: Code.Unauthenticated,
  PERMISSION_DENIED: Code.PermissionDenied,
  INTERNAL: Code.Internal,
};

/**
 * The one place where failures become gRPC statuses: a store error keeps its message and facts
 * (as a google.rpc.ErrorInfo); anything else is logged and answered as a bare INTERNAL, so no
 * SQL text or stack trace reaches a client.
 */
export function toConnectError(e: unknown, log: Logger): ConnectError {
  if (e instanceof ConnectError) return e;
  // A call's signal aborted without a reason of its own (a client that closed its connection).
  if (e instanceof DOMException && e.name === "AbortError") return new ConnectError("the call was cancelled", Code.Canceled);
  if (isEventStoreError(e)) {
    if (e.kind === "INTERNAL" || e.kind === "UNAVAILABLE") {
      log.warn(e.message, { kind: e.kind, cause: describe(e.cause) });
    }
    return new ConnectError(e.message, CODES[e.kind], undefined, [
      { desc: ErrorInfoSchema, value: { reason: e.kind, domain: ERROR_DOMAIN, metadata: e.facts } },
    ]);
  }
  log.error("unexpected error", { cause: describe(e) });
  return new ConnectError("Internal error", Code.Internal, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "INTERNAL", domain: ERROR_DOMAIN, metadata: {} } },
  ]);
}

/**
 * How a call ends once its client is gone or its deadline has passed: DEADLINE_EXCEEDED (the
 * signal's reason, as Connect sets it) or CANCELLED, never OK, which would tell a consumer that a
 * subscription ended of itself, or a reader that it has every event. Not logged: a client that
 * goes away is not the server's error.
 */
export function callEnded(signal: AbortSignal): ConnectError {
  return signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the call was cancelled", Code.Canceled);
}

function describe(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

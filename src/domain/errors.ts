/**
 * The closed set of failures the store can report. Each carries the facts a client needs; the
 * API layer maps the kind to a gRPC code and an ErrorInfo reason, and nothing else crosses.
 */
export type EventStoreErrorKind =
  | "INVALID_ARGUMENT"
  | "WRONG_EXPECTED_REVISION"
  | "STREAM_NOT_FOUND"
  | "STREAM_DELETED"
  | "STREAM_TOMBSTONED"
  | "DUPLICATE_EVENT_ID"
  /** An event id stored where a retry would put it, for another event: not a retry. */
  | "EVENT_ID_REUSED"
  | "LIMIT_EXCEEDED"
  /** A statement ran past the store's statement timeout: a cost limit, like LIMIT_EXCEEDED. */
  | "STATEMENT_TIMEOUT"
  | "PROJECTION_NOT_FOUND"
  | "PROJECTION_EXISTS"
  | "WRONG_EXPECTED_VERSION"
  | "WRONG_EXPECTED_STATUS"
  | "LEASE_HELD"
  /** A durable subscription's stored position is past the log's head (a restored database). */
  | "CHECKPOINT_PAST_HEAD"
  | "UNAVAILABLE"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "INTERNAL";

export class EventStoreError extends Error {
  override readonly name = "EventStoreError";

  constructor(
    readonly kind: EventStoreErrorKind,
    message: string,
    /** Facts for the client (ErrorInfo metadata): field names, revisions, limits. */
    readonly facts: Record<string, string> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function invalidArgument(field: string, message: string, facts: Record<string, string> = {}) {
  return new EventStoreError("INVALID_ARGUMENT", `${field}: ${message}`, { field, ...facts });
}

export function limitExceeded(field: string, limit: string, value: string, message: string) {
  return new EventStoreError("LIMIT_EXCEEDED", `${field}: ${message}`, { field, limit, value });
}

/** The call carries no credentials, or credentials that do not hold. */
export function unauthenticated(message: string) {
  return new EventStoreError("UNAUTHENTICATED", message);
}

/** Names the permission missing and the caller's own target; never anything of another's. */
export function permissionDenied(principal: string, permission: string, target: string) {
  return new EventStoreError("PERMISSION_DENIED", `${principal} lacks permission ${permission} on ${target}`, {
    principal,
    permission,
    target,
  });
}

export function isEventStoreError(e: unknown): e is EventStoreError {
  return e instanceof EventStoreError;
}

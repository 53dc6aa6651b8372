import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";

/**
 * Every failure the client reports: the gRPC code, the server's reason (google.rpc.ErrorInfo,
 * e.g. WRONG_EXPECTED_REVISION) and its facts. The subclasses name the ones callers handle.
 */
export class EventStoreClientError extends Error {
  override name = "EventStoreClientError";

  constructor(
    message: string,
    readonly code: Code,
    /** The server's reason, or "" when the failure did not come from our server. */
    readonly reason: string,
    readonly facts: Readonly<Record<string, string>>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The stream was not at the expected revision: nothing was written. */
export class WrongExpectedRevisionError extends EventStoreClientError {
  override name = "WrongExpectedRevisionError";
  /** The stream's revision when the append was refused; undefined when it had no events. */
  get actualRevision(): bigint | undefined {
    const actual = this.facts.actual_revision;
    return actual === undefined || actual === "none" ? undefined : BigInt(actual);
  }
  get stream(): string {
    return this.facts.stream ?? "";
  }
  /** As the server wrote it: a revision, "any", "no_stream" or "stream_exists". */
  get expectedRevision(): string {
    return this.facts.expected_revision ?? "";
  }
}

export class StreamNotFoundError extends EventStoreClientError {
  override name = "StreamNotFoundError";
}

export class StreamTombstonedError extends EventStoreClientError {
  override name = "StreamTombstonedError";
}

export class DuplicateEventIdError extends EventStoreClientError {
  override name = "DuplicateEventIdError";
}

/** An event id sent again with another type, content type, data or metadata: not a retry (a DuplicateEventIdError too). */
export class EventIdReusedError extends DuplicateEventIdError {
  override name = "EventIdReusedError";
}

/** The request broke a rule; `field` names the part (e.g. "events[0].type"). */
export class InvalidArgumentError extends EventStoreClientError {
  override name = "InvalidArgumentError";
  get field(): string {
    return this.facts.field ?? "";
  }
}

/** A size limit was passed; the facts carry `field`, `limit` and `value`. */
export class LimitExceededError extends EventStoreClientError {
  override name = "LimitExceededError";
}

/** The server or its database could not be reached: retrying later may succeed. */
export class UnavailableError extends EventStoreClientError {
  override name = "UnavailableError";
}

export class ProjectionNotFoundError extends EventStoreClientError {
  override name = "ProjectionNotFoundError";
}

export class ProjectionExistsError extends EventStoreClientError {
  override name = "ProjectionExistsError";
}

/** The projection record was not at the expected version (another runner, or a reset): nothing was written. */
export class WrongExpectedVersionError extends EventStoreClientError {
  override name = "WrongExpectedVersionError";
  get actualVersion(): bigint {
    return BigInt(this.facts.actual_version ?? "0");
  }
}

/** The projection record's status was not the expected one: nothing was written. */
export class WrongExpectedStatusError extends EventStoreClientError {
  override name = "WrongExpectedStatusError";
  /** As the server wrote them: idle, running, stopping, resetting or deleting. */
  get expectedStatus(): string {
    return this.facts.expected_status ?? "";
  }
  get actualStatus(): string {
    return this.facts.actual_status ?? "";
  }
}

/** Another runner holds the projection's lease. */
export class LeaseHeldError extends EventStoreClientError {
  override name = "LeaseHeldError";
  get holder(): string {
    return this.facts.holder ?? "";
  }
  get expiresAt(): Date {
    return new Date(this.facts.expires_at ?? 0);
  }
}

/** The call carried no credentials, or credentials the server did not accept. */
export class UnauthenticatedError extends EventStoreClientError {
  override name = "UnauthenticatedError";
}

/** The caller may not do this: `permission` names what it lacks, `target` what it asked for. */
export class PermissionDeniedError extends EventStoreClientError {
  override name = "PermissionDeniedError";
  get permission(): string {
    return this.facts.permission ?? "";
  }
  get target(): string {
    return this.facts.target ?? "";
  }
}

const BY_REASON: Record<string, typeof EventStoreClientError> = {
  UNAUTHENTICATED: UnauthenticatedError,
  PERMISSION_DENIED: PermissionDeniedError,
  PROJECTION_NOT_FOUND: ProjectionNotFoundError,
  PROJECTION_EXISTS: ProjectionExistsError,
  WRONG_EXPECTED_VERSION: WrongExpectedVersionError,
  WRONG_EXPECTED_STATUS: WrongExpectedStatusError,
  LEASE_HELD: LeaseHeldError,
  WRONG_EXPECTED_REVISION: WrongExpectedRevisionError,
  STREAM_NOT_FOUND: StreamNotFoundError,
  STREAM_DELETED: StreamNotFoundError,
  STREAM_TOMBSTONED: StreamTombstonedError,
  DUPLICATE_EVENT_ID: DuplicateEventIdError,
  EVENT_ID_REUSED: EventIdReusedError,
  INVALID_ARGUMENT: InvalidArgumentError,
  LIMIT_EXCEEDED: LimitExceededError,
  STATEMENT_TIMEOUT: LimitExceededError,
  UNAVAILABLE: UnavailableError,
};

/** Errors without an ErrorInfo (a proxy's, or health and reflection's): by their code alone. */
const BY_CODE: Partial<Record<Code, typeof EventStoreClientError>> = {
  [Code.Unavailable]: UnavailableError,
  [Code.Unauthenticated]: UnauthenticatedError,
  [Code.PermissionDenied]: PermissionDeniedError,
};

/** The typed error for a failed call (a ConnectError, or anything a transport threw). */
export function toClientError(e: unknown): EventStoreClientError {
  if (e instanceof EventStoreClientError) return e;
  const error = ConnectError.from(e);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const reason = info?.reason ?? "";
  const Class = BY_REASON[reason] ?? BY_CODE[error.code] ?? EventStoreClientError;
  return new Class(error.rawMessage, error.code, reason, { ...(info?.metadata ?? {}) }, { cause: e });
}

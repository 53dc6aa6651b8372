import { EventStoreError, formatRevision, expectedRevisionFromSql, invalidArgument } from "../../domain";

// Failures that mean "the database is not reachable right now"; the client may retry.
const CONNECTION_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "EAI_AGAIN",
  "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED", "CONNECT_TIMEOUT",
  "57P01", "57P02", "57P03", "53300", "40001", "40P01",
]);

interface PgError {
  code?: string;
  detail?: string;
  constraint_name?: string;
}

/** What the translation needs to know of the store and of the call. */
export interface ErrorContext {
  /** The store's statement timeout, named in the error of a statement that ran past it. */
  statementTimeoutMs?: number;
  /** The caller's signal: its reason, when it is what the work threw, passes through as it is. */
  signal?: AbortSignal;
}

/** Runs store work, so that every failure, validation included, surfaces as a store error. */
export async function guard<T>(work: () => T | Promise<T>, context: ErrorContext = {}): Promise<T> {
  try {
    return await work();
  } catch (e) {
    if (context.signal?.aborted && e === context.signal.reason) throw e;
    throw toEventStoreError(e, context);
  }
}

/**
 * Translates a database failure into the store's closed set of errors: the one place where
 * SQLSTATEs and constraint names become domain facts. The original error stays as the cause,
 * for logs; its text never reaches a client.
 */
export function toEventStoreError(e: unknown, context: ErrorContext = {}): EventStoreError {
  if (e instanceof EventStoreError) return e;
  const err = (e ?? {}) as PgError & { message?: string };
  const code = String(err.code ?? "");
  const facts = parseDetail(err.detail);
  switch (code) {
    case "ES001": {
      const expected = formatRevision(expectedRevisionFromSql(BigInt(facts.expected)));
      const actual = facts.actual === "-1" ? "none" : facts.actual;
      return new EventStoreError(
        "WRONG_EXPECTED_REVISION",
        `Wrong expected revision: ${expected} (stream ${facts.stream}, actual ${actual})`,
        { stream: facts.stream, expected_revision: expected, actual_revision: actual },
        { cause: e },
      );
    }
    case "ES002":
      return new EventStoreError("STREAM_TOMBSTONED", `Stream ${facts.stream} is tombstoned`, { stream: facts.stream }, { cause: e });
    case "ES003":
      return duplicateEventId(facts.stream, facts.event_id, e);
    case "ES006":
      return new EventStoreError(
        "EVENT_ID_REUSED",
        `Event id ${facts.event_id} is stored in ${facts.stream} for another event (its type, content type, data or metadata differ): a retry sends the same event again`,
        { stream: facts.stream, event_id: facts.event_id },
        { cause: e },
      );
    case "ES005":
      return new EventStoreError("STREAM_NOT_FOUND", `Stream ${facts.stream} not found`, { stream: facts.stream }, { cause: e });
    case "23505":
      if (err.constraint_name === "events_id_key") return duplicateEventId(undefined, undefined, e);
      break;
    case "2201B":
      return invalidArgument("filter.matchers", "invalid regular expression");
    case "57014":
      // Also the answer to a cancel request. The store's own cancels are answered with the
      // caller's abort reason before they get here; one sent by an operator (pg_cancel_backend)
      // says "user request", and the statement, rolled back, may simply be tried again.
      if (/user request/.test(String(err.message))) break;
      return statementTimeout(context.statementTimeoutMs, e);
  }
  if (CONNECTION_CODES.has(code) || code.startsWith("08") || code === "57014") {
    return new EventStoreError("UNAVAILABLE", "The database is unavailable; retry later", {}, { cause: e });
  }
  return new EventStoreError("INTERNAL", "Internal error", {}, { cause: e });
}

/** Whether the database ended a statement for running past the statement timeout. */
export function isStatementTimeout(e: unknown): boolean {
  return toEventStoreError(e).kind === "STATEMENT_TIMEOUT";
}

/** The request cost more database time than one statement may take; nothing of it was written. */
function statementTimeout(ms: number | undefined, cause: unknown) {
  const limit = ms === undefined ? "the statement timeout" : `the statement timeout of ${ms} ms`;
  return new EventStoreError(
    "STATEMENT_TIMEOUT",
    `The request's database work ran past ${limit} (setting statement-timeout-ms)`,
    ms === undefined ? { setting: "statement-timeout-ms" } : { setting: "statement-timeout-ms", limit_ms: String(ms) },
    { cause },
  );
}

function duplicateEventId(stream: string | undefined, id: string | undefined, cause: unknown) {
  const facts: Record<string, string> = {};
  if (stream) facts.stream = stream;
  if (id) facts.event_id = id;
  return new EventStoreError(
    "DUPLICATE_EVENT_ID",
    `Event id ${id ?? ""} is already stored elsewhere`.replace("  ", " "),
    facts,
    { cause },
  );
}

function parseDetail(detail: string | undefined): Record<string, string> {
  if (!detail) return {};
  try {
    const parsed = JSON.parse(detail) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, String(v)]));
  } catch {
    return {};
  }
}

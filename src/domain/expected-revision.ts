/**
 * What a writer expects a stream to be at: any state, absent, present, or at an exact revision
 * (the revision of its last event).
 */
export type ExpectedRevision = "any" | "no_stream" | "stream_exists" | bigint;

/** A stream's current revision, or "none" when it has no (undeleted) events. */
export type ActualRevision = bigint | "none";

/** True when a stream at `actual` satisfies `expected`. */
export function satisfies(expected: ExpectedRevision, actual: ActualRevision): boolean {
  switch (expected) {
    case "any":
      return true;
    case "no_stream":
      return actual === "none";
    case "stream_exists":
      return actual !== "none";
    default:
      return actual === expected;
  }
}

export function formatRevision(r: ExpectedRevision | ActualRevision): string {
  return typeof r === "bigint" ? r.toString() : r;
}

/**
 * Encodes an expected revision as the single bigint the SQL functions take: exact revisions are
 * themselves, the named states are negative (the same numbers KurrentDB uses).
 */
export function expectedRevisionToSql(expected: ExpectedRevision): bigint {
  switch (expected) {
    case "any":
      return -2n;
    case "no_stream":
      return -1n;
    case "stream_exists":
      return -4n;
    default:
      return expected;
  }
}

export function expectedRevisionFromSql(value: bigint): ExpectedRevision {
  if (value === -2n) return "any";
  if (value === -1n) return "no_stream";
  if (value === -4n) return "stream_exists";
  return value;
}

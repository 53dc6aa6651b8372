/** Every size limit the server enforces. All are configurable; the defaults are documented. */
export interface Limits {
  /** Most events in one append (or all appends of one multi-stream append). */
  maxAppendEvents: number;
  /** Most bytes of data plus metadata in one event. */
  maxEventBytes: number;
  /** Most bytes of data plus metadata in one append request. */
  maxAppendBytes: number;
  /** Most streams in one multi-stream append. */
  maxAppendStreams: number;
  /** Most characters in an event type. */
  maxEventTypeLength: number;
  /** Most conditions (types, matchers, values) in one filter. */
  maxFilterTerms: number;
  /** Most bytes in a projection's state (and its initial state). */
  maxProjectionStateBytes: number;
  /** Most source streams a projection record tracks revisions of. */
  maxProjectionStreams: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxAppendEvents: 10_000,
  maxEventBytes: 1024 * 1024,
  maxAppendBytes: 16 * 1024 * 1024,
  maxAppendStreams: 100,
  maxEventTypeLength: 256,
  maxFilterTerms: 100,
  maxProjectionStateBytes: 1024 * 1024,
  maxProjectionStreams: 1000,
};

/** Every size limit the server enforces. All are configurable; the defaults are documented. */
export interface Limits {
  /** Most events in one append (or all appends of one multi-stream append). */
  maxAppendEvents: number;
  /** Most bytes in one event, as eventBytes counts them (every field: see event-bytes.ts). */
  maxEventBytes: number;
  /** Most bytes in one append request, as eventBytes counts its events. */
  maxAppendBytes: number;
  /** Most streams in one multi-stream append. */
  maxAppendStreams: number;
  /** Most characters in an event type. */
  maxEventTypeLength: number;
  /** Most bytes (UTF-8) in an event's content type. */
  maxContentTypeLength: number;
  /** Most nesting levels of objects and lists in an event's metadata (or `json` payload); `{}` is 1. */
  maxMetadataDepth: number;
  /** Most values in one event's metadata: object members and list elements, at every depth. */
  maxMetadataValues: number;
  /** Most values in all the metadata (and `json` payloads) of one append request together. */
  maxAppendJsonValues: number;
  /** Most conditions (types, matchers, values) in one filter. */
  maxFilterTerms: number;
  /** Most bytes (UTF-8) in one filter's types, prefix, category, keys and JSON-encoded operands. */
  maxFilterBytes: number;
  /** Most characters in one regular expression of a filter. */
  maxRegexLength: number;
  /** Most RE2 instructions a filter's regular expressions compile to, together: the cost of matching per character. */
  maxRegexInstructions: number;
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
  // A media type with its parameters fits in a few dozen bytes (RFC 6838 caps each name at 127).
  maxContentTypeLength: 256,
  // Deeper than protobuf's usual recursion limit of 100 messages (a JSON level is two of them):
  // every client library can read back what was stored.
  maxMetadataDepth: 32,
  // Metadata is correlation and routing data, tens of values; every reader of an event decodes
  // all of them, and 1 MiB can hold over 100,000: at 1-3 µs each here, 0.1-0.3 s per read.
  maxMetadataValues: 1000,
  // What bounds a request's decode once events are counted: 10 values for each of 10,000 events.
  // Decoding those took 0.1-0.3 s hand-written, 0.4-1.5 s in protobuf-es and 0.3-0.7 s from JSON
  // here (2 busy cores), about what 10,000 events with one value each cost.
  maxAppendJsonValues: 100_000,
  maxFilterTerms: 100,
  // A filter names things: types, tenants, ids; 100 terms of 600 bytes are far more than that
  // needs. PostgreSQL compares every operand with every row it reads, so the bytes bound the
  // work per row: 99 values in 58 KiB cost a read no more than 99 short ones, where 99 in
  // 19 MiB cost 100 times as much, past a minute on 100,000 rows (docs/regex-engine.md).
  maxFilterBytes: 64 * 1024,
  maxRegexLength: 1024,
  // The NFA, which RE2 falls back to when its DFA would grow too large, visits every
  // instruction per character: about 15 ns each here, so 256 cost an event at most about 4 ms
  // per KiB of the values matched, where typical patterns (a UUID: 40, \w{3,64}: 127) cost far
  // less (docs/regex-engine.md).
  maxRegexInstructions: 256,
  maxProjectionStateBytes: 1024 * 1024,
  maxProjectionStreams: 1000,
};

import type { ExpectedRevision } from "./expected-revision";
import type { ProposedEvent } from "./event";
import { eventBytes } from "./event-bytes";
import { invalidArgument, limitExceeded } from "./errors";
import type { Limits } from "./limits";
import { validateStreamName } from "./stream-name";
import { LINK_EVENT_TYPE, validateLinkData } from "./link";
import { isStorableText, NOT_STORABLE_MESSAGE } from "./storable-text";

/** One stream's part of an append: its events and the revision its writer expects. */
export interface StreamAppend {
  stream: string;
  expected: ExpectedRevision;
  events: ProposedEvent[];
}

/**
 * Checks a whole (multi-stream) append against the rules and limits before anything is
 * written. Field names are the request's, so a client sees which of its fields is wrong.
 */
export function validateAppends(appends: StreamAppend[], limits: Limits, multi = appends.length > 1): void {
  const prefix = "";
  if (appends.length === 0) throw invalidArgument(`${prefix}appends`, "at least one append is required");
  if (appends.length > limits.maxAppendStreams) {
    throw limitExceeded(`${prefix}appends`, String(limits.maxAppendStreams), String(appends.length),
      `at most ${limits.maxAppendStreams} streams in one append`);
  }
  // Counted first: the checks below cost a walk of each event.
  let events = 0;
  for (const append of appends) events += append.events.length;
  if (events > limits.maxAppendEvents) {
    throw limitExceeded(`${prefix}events`, String(limits.maxAppendEvents), String(events),
      `at most ${limits.maxAppendEvents} events in one append (got ${events})`);
  }
  const streams = new Set<string>();
  const ids = new Set<string>();
  let bytes = 0;
  let values = 0;
  appends.forEach((append, a) => {
    const at = multi ? `appends[${a}].` : "";
    validateStreamName(append.stream, `${at}stream`);
    if (streams.has(append.stream)) throw invalidArgument(`${at}stream`, `stream ${append.stream} appears twice`);
    streams.add(append.stream);
    if (typeof append.expected === "bigint" && append.expected < 0n) {
      throw invalidArgument(`${at}expected_revision`, "an expected revision is not negative");
    }
    if (append.events.length === 0) throw invalidArgument(`${at}events`, "at least one event is required");
    append.events.forEach((event, i) => {
      const field = `${at}events[${i}]`;
      if (event.type.length === 0) throw invalidArgument(`${field}.type`, "an event type must not be empty");
      if (event.type.length > limits.maxEventTypeLength) {
        throw limitExceeded(`${field}.type`, String(limits.maxEventTypeLength), String(event.type.length),
          `an event type is at most ${limits.maxEventTypeLength} characters`);
      }
      const contentTypeBytes = Buffer.byteLength(event.contentType);
      if (contentTypeBytes > limits.maxContentTypeLength) {
        throw limitExceeded(`${field}.content_type`, String(limits.maxContentTypeLength), String(contentTypeBytes),
          `a content type is at most ${limits.maxContentTypeLength} bytes (got ${contentTypeBytes})`);
      }
      // Before anything else walks the metadata: a walk of unbounded depth could exhaust the stack.
      const shape = metadataShape(event.metadata, limits.maxMetadataDepth);
      if (shape.depth > limits.maxMetadataDepth) {
        throw limitExceeded(`${field}.metadata`, String(limits.maxMetadataDepth), `more than ${limits.maxMetadataDepth}`,
          `metadata nests at most ${limits.maxMetadataDepth} levels of objects and lists`);
      }
      if (shape.values > limits.maxMetadataValues) {
        throw limitExceeded(`${field}.metadata`, String(limits.maxMetadataValues), String(shape.values),
          `metadata holds at most ${limits.maxMetadataValues} values (members and list elements; got ${shape.values})`);
      }
      values += shape.values;
      // PostgreSQL's text and jsonb hold neither U+0000 nor an unpaired surrogate: refused here
      // rather than failing the write.
      if (!isStorableText(event.type)) throw invalidArgument(`${field}.type`, NOT_STORABLE_MESSAGE);
      if (!isStorableText(event.contentType)) throw invalidArgument(`${field}.content_type`, NOT_STORABLE_MESSAGE);
      if (shape.unstorable) throw invalidArgument(`${field}.metadata`, `every key and string ${NOT_STORABLE_MESSAGE}`);
      // JSON has no NaN or Infinity: stored, they would become null, the client's data changed.
      if (shape.nonFinite) throw invalidArgument(`${field}.metadata`, "every number must be finite: JSON has no NaN or Infinity");
      if (event.type === LINK_EVENT_TYPE) validateLinkData(event.data, `${field}.data`);
      if (ids.has(event.id)) throw invalidArgument(`${field}.id`, `event id ${event.id} appears twice in the request`);
      ids.add(event.id);
      const size = eventBytes(append.stream, event);
      if (size > limits.maxEventBytes) {
        throw limitExceeded(field, String(limits.maxEventBytes), String(size),
          `an event is at most ${limits.maxEventBytes} bytes, every field counted (got ${size})`);
      }
      bytes += size;
    });
  });
  if (bytes > limits.maxAppendBytes) {
    throw limitExceeded(`${prefix}events`, String(limits.maxAppendBytes), String(bytes),
      `an append carries at most ${limits.maxAppendBytes} bytes of events, every field counted (got ${bytes})`);
  }
  if (values > limits.maxAppendJsonValues) {
    throw limitExceeded(`${prefix}events`, String(limits.maxAppendJsonValues), String(values),
      `an append carries at most ${limits.maxAppendJsonValues} metadata values (got ${values})`);
  }
}

interface JsonShape {
  /** Levels of objects and lists; past `maxDepth` the walk stops and answers maxDepth + 1. */
  depth: number;
  /** Object members and list elements, at every depth walked. */
  values: number;
  /** Whether a string or key holds U+0000 or an unpaired surrogate. */
  unstorable: boolean;
  /** Whether a number is NaN or infinite. */
  nonFinite: boolean;
}

/** One walk of a metadata object for what the limits and PostgreSQL care about. */
function metadataShape(metadata: Record<string, unknown>, maxDepth: number): JsonShape {
  const shape: JsonShape = { depth: 0, values: 0, unstorable: false, nonFinite: false };
  walk(metadata, 1, maxDepth, shape);
  return shape;
}

function walk(value: unknown, depth: number, maxDepth: number, shape: JsonShape): void {
  if (typeof value === "string") {
    if (!isStorableText(value)) shape.unstorable = true;
    return;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) shape.nonFinite = true;
    return;
  }
  if (value === null || typeof value !== "object") return;
  if (depth > shape.depth) shape.depth = depth;
  if (depth > maxDepth) return;
  if (Array.isArray(value)) {
    shape.values += value.length;
    for (const v of value) walk(v, depth + 1, maxDepth, shape);
    return;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    shape.values++;
    if (!isStorableText(key)) shape.unstorable = true;
    walk((value as Record<string, unknown>)[key], depth + 1, maxDepth, shape);
  }
}

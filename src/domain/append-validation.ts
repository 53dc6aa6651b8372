import type { ExpectedRevision } from "./expected-revision";
import type { ProposedEvent } from "./event";
import { invalidArgument, limitExceeded } from "./errors";
import type { Limits } from "./limits";
import { validateStreamName } from "./stream-name";
import { LINK_EVENT_TYPE, validateLinkData } from "./link";

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
  const streams = new Set<string>();
  const ids = new Set<string>();
  let events = 0;
  let bytes = 0;
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
      // PostgreSQL's text and jsonb cannot hold U+0000: refused here rather than failing the write.
      if (event.type.includes("\0")) throw invalidArgument(`${field}.type`, NUL_MESSAGE);
      if (event.contentType.includes("\0")) throw invalidArgument(`${field}.content_type`, NUL_MESSAGE);
      if (holdsNul(event.metadata)) throw invalidArgument(`${field}.metadata`, NUL_MESSAGE);
      if (event.type === LINK_EVENT_TYPE) validateLinkData(event.data, `${field}.data`);
      if (ids.has(event.id)) throw invalidArgument(`${field}.id`, `event id ${event.id} appears twice in the request`);
      ids.add(event.id);
      const size = event.data.byteLength + Buffer.byteLength(JSON.stringify(event.metadata));
      if (size > limits.maxEventBytes) {
        throw limitExceeded(field, String(limits.maxEventBytes), String(size),
          `an event's data and metadata are at most ${limits.maxEventBytes} bytes (got ${size})`);
      }
      bytes += size;
    });
    events += append.events.length;
  });
  if (events > limits.maxAppendEvents) {
    throw limitExceeded(`${prefix}events`, String(limits.maxAppendEvents), String(events),
      `at most ${limits.maxAppendEvents} events in one append (got ${events})`);
  }
  if (bytes > limits.maxAppendBytes) {
    throw limitExceeded(`${prefix}events`, String(limits.maxAppendBytes), String(bytes),
      `an append carries at most ${limits.maxAppendBytes} bytes of data and metadata (got ${bytes})`);
  }
}

const NUL_MESSAGE = "must not contain the character U+0000";

/** Whether a JSON value has U+0000 in any string or key. */
function holdsNul(value: unknown): boolean {
  if (typeof value === "string") return value.includes("\0");
  if (Array.isArray(value)) return value.some(holdsNul);
  if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) if (k.includes("\0") || holdsNul(v)) return true;
  }
  return false;
}

import { invalidArgument, limitExceeded, type Limits } from "../domain";
import { NOT_HANDLED, ProtobufReader, WIRE_LEN } from "./protobuf-reader";

/**
 * Checks an AppendRequest's wire bytes against the append limits before any of it is decoded,
 * by walking its tags and lengths without building a value: how many events, how deep and how
 * many metadata (and `json` payload) values, how long each content type, and a lower bound of
 * the events' bytes (their stream, id, type, content type and data; metadata is measured after
 * decoding, once the counts bound what decoding it costs). A limit passed throws its
 * LIMIT_EXCEEDED error, with the request's field; bytes that do not parse are left to the
 * decoder, which answers for them.
 *
 * Why: decoding came first, and a 24 MB append of 4.8 M empty events held the server for
 * 102 s and 4.1 GB before its count was checked; metadata nested 5,000 levels deep overflowed
 * the decoder's stack.
 */
export function scanAppendRequest(bytes: Uint8Array, limits: Limits): void {
  scan(bytes, limits, (r, tally) => scanAppend(r, bytes.byteLength, tally, ""));
}

/** The same for a MultiStreamAppendRequest (`repeated AppendRequest appends = 1`). */
export function scanMultiStreamAppendRequest(bytes: Uint8Array, limits: Limits): void {
  scan(bytes, limits, (r, tally) => {
    let appends = 0;
    while (r.pos < bytes.byteLength) {
      const tag = r.rawTag();
      const field = tag >>> 3;
      const wire = tag & 7;
      if (field !== 1 || wire !== WIRE_LEN) {
        r.skip(wire);
        continue;
      }
      const end = r.end();
      if (++appends > limits.maxAppendStreams) {
        throw limitExceeded("appends", String(limits.maxAppendStreams), `more than ${limits.maxAppendStreams}`,
          `at most ${limits.maxAppendStreams} streams in one append`);
      }
      scanAppend(r, end, tally, `appends[${appends - 1}].`);
      r.pos = end;
    }
  });
}

/** What the request holds so far, across all its appends. */
interface Tally {
  limits: Limits;
  events: number;
  bytes: number;
  values: number;
}

function scan(bytes: Uint8Array, limits: Limits, walk: (r: ProtobufReader, tally: Tally) => void): void {
  try {
    walk(new ProtobufReader(bytes), { limits, events: 0, bytes: 0, values: 0 });
  } catch (e) {
    if (e !== NOT_HANDLED) throw e;
  }
}

function scanAppend(r: ProtobufReader, end: number, tally: Tally, at: string): void {
  const { limits } = tally;
  let stream = 0;
  let events = 0;
  let streamCounted = 0;
  while (r.pos < end) {
    const tag = r.rawTag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== WIRE_LEN || (field !== 1 && field !== 2)) {
      r.skip(wire);
      continue;
    }
    const fieldEnd = r.end();
    if (field === 1) {
      stream = fieldEnd - r.pos;
    } else {
      if (++tally.events > limits.maxAppendEvents) {
        throw limitExceeded("events", String(limits.maxAppendEvents), `more than ${limits.maxAppendEvents}`,
          `at most ${limits.maxAppendEvents} events in one append`);
      }
      const index = events++;
      const own = scanEvent(r, fieldEnd, tally, at, index);
      // The stream's name counts toward every event; one given after the events counts at the end.
      if (stream + own > limits.maxEventBytes) {
        throw limitExceeded(`${at}events[${index}]`, String(limits.maxEventBytes), `at least ${stream + own}`,
          `an event is at most ${limits.maxEventBytes} bytes, every field counted (got at least ${stream + own})`);
      }
      addBytes(tally, stream + own);
      streamCounted += stream;
    }
    r.pos = fieldEnd;
  }
  addBytes(tally, Math.max(0, stream * events - streamCounted));
}

function addBytes(tally: Tally, bytes: number): void {
  tally.bytes += bytes;
  if (tally.bytes > tally.limits.maxAppendBytes) {
    throw limitExceeded("events", String(tally.limits.maxAppendBytes), `at least ${tally.bytes}`,
      `an append carries at most ${tally.limits.maxAppendBytes} bytes of events, every field counted (got at least ${tally.bytes})`);
  }
}

/**
 * One ProposedEvent: its content type's length, its metadata's and `json` payload's shape; answers
 * the bytes of its id, type, content type and data (the last of each, as protobuf keeps it).
 */
function scanEvent(r: ProtobufReader, end: number, tally: Tally, at: string, index: number): number {
  const { limits } = tally;
  // The last of each, as protobuf keeps it: id, type, content type, and data or json.
  let id = 0;
  let type = 0;
  let contentType = 0;
  let data = 0;
  let metadata: Shape | undefined;
  while (r.pos < end) {
    const tag = r.rawTag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const fieldEnd = r.end();
    const length = fieldEnd - r.pos;
    switch (field) {
      case 1:
        id = length;
        break;
      case 2:
        type = length;
        break;
      case 3:
        if (length > limits.maxContentTypeLength) {
          throw limitExceeded(`${at}events[${index}].content_type`, String(limits.maxContentTypeLength), String(length),
            `a content type is at most ${limits.maxContentTypeLength} bytes (got ${length})`);
        }
        contentType = length;
        break;
      case 4:
        data = length;
        break;
      case 5:
        data = 0; // a json payload replaces data (a oneof); its JSON is measured once decoded
        scanValue(r, fieldEnd, 0, { tally, at, index, part: "json", values: 0, maxValues: Number.POSITIVE_INFINITY });
        break;
      case 6:
        metadata ??= { tally, at, index, part: "metadata", values: 0, maxValues: limits.maxMetadataValues };
        scanStruct(r, fieldEnd, 1, metadata);
        break;
    }
    r.pos = fieldEnd;
  }
  return id + type + contentType + data;
}

/** Where values are being counted: one event's metadata, or its json payload. */
interface Shape {
  tally: Tally;
  /** The event's place, for the field an error names: `${at}events[${index}].${part}`. */
  at: string;
  index: number;
  part: "metadata" | "json";
  values: number;
  maxValues: number;
}

// google.protobuf.Struct { map<string, Value> fields = 1; }: `depth` is this object's level.
function scanStruct(r: ProtobufReader, end: number, depth: number, shape: Shape): void {
  checkDepth(depth, shape);
  while (r.pos < end) {
    const tag = r.rawTag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field !== 1 || wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const entryEnd = r.end();
    countValue(shape);
    while (r.pos < entryEnd) {
      const t = r.rawTag();
      const f = t >>> 3;
      const w = t & 7;
      if (f === 2 && w === WIRE_LEN) {
        const valueEnd = r.end();
        scanValue(r, valueEnd, depth, shape);
        r.pos = valueEnd;
      } else {
        r.skip(w);
      }
    }
    r.pos = entryEnd;
  }
}

// google.protobuf.Value: only a Struct or a ListValue (fields 5, 6) holds more values. One with
// no kind at all (fields 1 to 6) is refused: decoders make it a null, which the client did not send.
function scanValue(r: ProtobufReader, end: number, depth: number, shape: Shape): void {
  let kinds = 0;
  while (r.pos < end) {
    const tag = r.rawTag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field >= 1 && field <= 6) kinds++;
    if ((field !== 5 && field !== 6) || wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const nestedEnd = r.end();
    if (field === 5) scanStruct(r, nestedEnd, depth + 1, shape);
    else scanList(r, nestedEnd, depth + 1, shape);
    r.pos = nestedEnd;
  }
  if (kinds === 0) throw invalidArgument(fieldOf(shape), `${nounOf(shape)} holds a Value with no kind set (null is null_value)`);
}

// google.protobuf.ListValue { repeated Value values = 1; }
function scanList(r: ProtobufReader, end: number, depth: number, shape: Shape): void {
  checkDepth(depth, shape);
  while (r.pos < end) {
    const tag = r.rawTag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (field !== 1 || wire !== WIRE_LEN) {
      r.skip(wire);
      continue;
    }
    const valueEnd = r.end();
    countValue(shape);
    scanValue(r, valueEnd, depth, shape);
    r.pos = valueEnd;
  }
}

function checkDepth(depth: number, shape: Shape): void {
  const max = shape.tally.limits.maxMetadataDepth;
  if (depth > max) {
    throw limitExceeded(fieldOf(shape), String(max), `more than ${max}`, `${nounOf(shape)} nests at most ${max} levels of objects and lists`);
  }
}

/** One more object member or list element, in this event's metadata or payload and in the request. */
function countValue(shape: Shape): void {
  if (++shape.values > shape.maxValues) {
    throw limitExceeded(fieldOf(shape), String(shape.maxValues), `more than ${shape.maxValues}`,
      `metadata holds at most ${shape.maxValues} values (members and list elements)`);
  }
  const { tally } = shape;
  if (++tally.values > tally.limits.maxAppendJsonValues) {
    throw limitExceeded("events", String(tally.limits.maxAppendJsonValues), `more than ${tally.limits.maxAppendJsonValues}`,
      `an append carries at most ${tally.limits.maxAppendJsonValues} metadata values`);
  }
}

const fieldOf = (shape: Shape) => `${shape.at}events[${shape.index}].${shape.part}`;
const nounOf = (shape: Shape) => (shape.part === "json" ? "a json payload" : "metadata");

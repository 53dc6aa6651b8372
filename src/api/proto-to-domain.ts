import { toJson } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema, type Timestamp, type Value } from "@bufbuild/protobuf/wkt";
import {
  DataEncoding,
  Direction as ProtoDirection,
  EventProperty as ProtoProperty,
  ExpectedState,
  Operator as ProtoOperator,
  type AppendRequest,
  type Filter,
  type Matcher as ProtoMatcher,
  type ProposedEvent as ProtoProposedEvent,
} from "../../gen/eventstore/v1/eventstore_pb";
import {
  invalidArgument,
  JSON_CONTENT_TYPE,
  newEventId,
  parseEventId,
  type EventFilter,
  type EventProperty,
  type ExpectedRevision,
  type JsonValue,
  type Matcher,
  type Operator,
  type ProposedEvent,
  type StreamAppend,
} from "../domain";
import type { Direction } from "../store";

// Requests are checked here only for what the wire allows and the domain cannot see (unknown
// enum numbers, negative counts); the domain rules themselves run in the store.

export function toStreamAppend(req: AppendRequest, at = ""): StreamAppend {
  return {
    stream: req.stream,
    expected: toExpectedRevision(req.expected, at),
    events: req.events.map((e, i) => toProposedEvent(e, `${at}events[${i}]`)),
  };
}

/** The largest revision, position or version there can be: PostgreSQL's bigint holds no more. */
export const MAX_STORED_NUMBER = 2n ** 63n - 1n;

/**
 * Where a read or subscription starts. A uint64 beyond every number that can be stored (Go's
 * `math.MaxUint64`, say, meaning "the end") starts where the largest would: forwards, after
 * every event; backwards, at the last. The same answer, so nothing the client meant changes.
 */
export function toStartNumber(value: bigint): bigint {
  return value > MAX_STORED_NUMBER ? MAX_STORED_NUMBER : value;
}

/** A number that must name a revision, position or version that can exist. */
export function toStoredNumber(value: bigint, field: string): bigint {
  if (value > MAX_STORED_NUMBER) throw invalidArgument(field, `must be at most ${MAX_STORED_NUMBER}: no revision, position or version is larger`);
  return value;
}

export function toExpectedRevision(expected: AppendRequest["expected"], at = ""): ExpectedRevision {
  switch (expected.case) {
    case undefined:
      return "any";
    case "expectedRevision":
      return toStoredNumber(expected.value, `${at}expected_revision`);
    case "expectedState": {
      const state: number = expected.value;
      switch (state) {
        case ExpectedState.UNSPECIFIED:
        case ExpectedState.ANY:
          return "any";
        case ExpectedState.NO_STREAM:
          return "no_stream";
        case ExpectedState.STREAM_EXISTS:
          return "stream_exists";
      }
      throw unknownEnum(`${at}expected_state`, state);
    }
  }
}

function toProposedEvent(e: ProtoProposedEvent, field: string): ProposedEvent {
  let data: Uint8Array;
  let contentType = e.contentType || JSON_CONTENT_TYPE;
  switch (e.payload.case) {
    case "data":
      data = e.payload.value;
      break;
    case "json":
      data = Buffer.from(JSON.stringify(toJsonValue(e.payload.value, `${field}.json`)));
      contentType = e.contentType || JSON_CONTENT_TYPE;
      break;
    default:
      data = new Uint8Array(0);
  }
  return {
    id: e.id === "" ? newEventId() : parseEventId(e.id, `${field}.id`),
    type: e.type,
    contentType,
    data,
    metadata: e.metadata ?? {},
  };
}

export function toDirection(d: ProtoDirection, field = "direction"): Direction {
  switch (d) {
    case ProtoDirection.UNSPECIFIED:
    case ProtoDirection.FORWARDS:
      return "forwards";
    case ProtoDirection.BACKWARDS:
      return "backwards";
  }
  throw unknownEnum(field, d as number);
}

export function toJsonEncoding(e: DataEncoding, field = "data_encoding"): boolean {
  switch (e) {
    case DataEncoding.UNSPECIFIED:
    case DataEncoding.BYTES:
      return false;
    case DataEncoding.JSON:
      return true;
  }
  throw unknownEnum(field, e as number);
}

/** A read limit: 0 means none; negative is an error. */
export function toLimit(limit: bigint, field = "limit"): bigint {
  if (limit < 0n) throw invalidArgument(field, `must not be negative (got ${limit})`);
  return limit;
}

export function toFilter(f: Filter | undefined, field = "filter"): EventFilter {
  if (!f) return { eventTypes: [], matchers: [] };
  return {
    eventTypes: f.eventTypes,
    streamPrefix: f.streams.case === "streamPrefix" ? f.streams.value : undefined,
    category: f.streams.case === "category" ? f.streams.value : undefined,
    storedFrom: toDate(f.storedFrom),
    storedBefore: toDate(f.storedBefore),
    matchers: f.matchers.map((m, i) => toMatcher(m, `${field}.matchers[${i}]`)),
  };
}

function toDate(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

const OPERATORS: Partial<Record<ProtoOperator, Operator>> = {
  [ProtoOperator.EQ]: "eq",
  [ProtoOperator.NE]: "ne",
  [ProtoOperator.GT]: "gt",
  [ProtoOperator.GTE]: "gte",
  [ProtoOperator.LT]: "lt",
  [ProtoOperator.LTE]: "lte",
  [ProtoOperator.IN]: "in",
  [ProtoOperator.NOT_IN]: "not_in",
  [ProtoOperator.REGEX]: "regex",
};

const PROPERTIES: Partial<Record<ProtoProperty, EventProperty>> = {
  [ProtoProperty.TYPE]: "type",
  [ProtoProperty.ID]: "id",
  [ProtoProperty.STORED_AT]: "stored_at",
  [ProtoProperty.STREAM]: "stream",
};

function toMatcher(m: ProtoMatcher, field: string): Matcher {
  const operator = OPERATORS[m.operator];
  if (!operator) {
    if (m.operator === ProtoOperator.UNSPECIFIED) throw invalidArgument(`${field}.operator`, "an operator is required");
    throw unknownEnum(`${field}.operator`, m.operator);
  }
  let matcherField: Matcher["field"];
  if (m.field.case === "metadataKey") {
    matcherField = { metadataKey: m.field.value };
  } else if (m.field.case === "property") {
    const property = PROPERTIES[m.field.value];
    if (!property) {
      if (m.field.value === ProtoProperty.UNSPECIFIED) throw invalidArgument(`${field}.property`, "a property is required");
      throw unknownEnum(`${field}.property`, m.field.value);
    }
    matcherField = { property };
  } else {
    throw invalidArgument(`${field}.field`, "a matcher needs a metadata_key or a property");
  }
  return {
    field: matcherField,
    operator,
    value: m.value ? toJsonValue(m.value, `${field}.value`) : undefined,
    values: m.values.map((v, i) => toJsonValue(v, `${field}.values[${i}]`)),
  };
}

/**
 * A google.protobuf.Value as JSON, refused where JSON has nothing for it: a number that is NaN
 * or infinite, a Value with no kind set (null is `null_value`), at any depth. Never turned into
 * something else, such as the null JSON.stringify would write.
 */
function toJsonValue(v: Value, field: string): JsonValue {
  try {
    return toJson(ValueSchema, v) as JsonValue;
  } catch {
    throw invalidArgument(field, "must be JSON: every number finite (no NaN or Infinity) and every Value set (null is null_value)");
  }
}

function unknownEnum(field: string, value: number) {
  return invalidArgument(field, `unknown enum value ${value}`);
}

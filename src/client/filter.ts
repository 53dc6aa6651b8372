import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { FilterSchema, MatcherSchema } from "../../gen/eventstore/v1/eventstore_pb";

/** Which events a read or subscription keeps; every condition that is set must hold. */
export interface EventFilter {
  /** Any of these types. */
  eventTypes?: string[];
  /** Streams whose name starts with this text (not with `category`). */
  streamPrefix?: string;
  /** Streams of this category: the part of the name before the first '-'. */
  category?: string;
  /** Stored at or after. */
  storedFrom?: Date;
  /** Stored before. */
  storedBefore?: Date;
  /** Metadata and property matchers, as in the .proto. */
  matchers?: MessageInitShape<typeof MatcherSchema>[];
}

export function toProtoFilter(f: EventFilter | undefined): MessageInitShape<typeof FilterSchema> | undefined {
  if (!f) return undefined;
  if (f.streamPrefix !== undefined && f.category !== undefined) throw new TypeError("a filter takes streamPrefix or category, not both");
  return {
    eventTypes: f.eventTypes,
    streams:
      f.streamPrefix !== undefined
        ? { case: "streamPrefix", value: f.streamPrefix }
        : f.category !== undefined
          ? { case: "category", value: f.category }
          : { case: undefined },
    storedFrom: f.storedFrom ? timestampFromDate(f.storedFrom) : undefined,
    storedBefore: f.storedBefore ? timestampFromDate(f.storedBefore) : undefined,
    matchers: f.matchers,
  };
}

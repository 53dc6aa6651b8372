import { create, type MessageShape } from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import type { HandlerContext } from "@connectrpc/connect";
import type { EventBatchSchema, ReadAllResponseSchema, ReadStreamResponseSchema } from "../../gen/eventstore/v1/eventstore_pb";
import type { RecordedEvent } from "../domain";
import { fromRecordedEvent } from "./domain-to-proto";
import { encodeRecordedEvent } from "./recorded-event-encoder";

/** How one call's events go on the wire. */
export interface EventWire {
  /** The call's codec is JSON (Connect or gRPC with +json, e.g. curl): messages must be objects. */
  jsonCodec: boolean;
  /** DATA_ENCODING_JSON: JSON payloads as google.protobuf.Value rather than bytes. */
  payloadAsJson: boolean;
}

export function eventWire(ctx: HandlerContext, payloadAsJson: boolean): EventWire {
  const contentType = ctx.requestHeader.get("content-type") ?? "";
  return { jsonCodec: /[+/]json\s*(;|$)/i.test(contentType), payloadAsJson };
}

/**
 * Most bytes of encoded events in one streamed response message, unless a message holds a single
 * event (up to the event size limit, well under the 4 MiB that gRPC clients accept by default).
 * Large enough that per-message costs vanish (hundreds of typical events); small enough that a
 * message waiting in each of a thousand slow streams' HTTP/2 buffers stays a few dozen MiB, where
 * 1 MiB messages took a fan-out server past 1 GiB.
 */
export const DEFAULT_MESSAGE_BYTES = 64 * 1024;

/** The messages that carry a list of events: `repeated RecordedEvent events = 1` each. */
type EventListSchema = typeof ReadStreamResponseSchema | typeof ReadAllResponseSchema | typeof EventBatchSchema;

/** Encodes one event as length-delimited RecordedEvent bytes (see recorded-event-encoder.ts). */
export type EncodeEvent = (e: RecordedEvent, payloadAsJson: boolean) => Uint8Array;

/**
 * Splits `events` into messages of `schema` of at most `maxBytes` of encoded events each (a
 * message holds at least one event, so one event up to the event size limit always goes).
 *
 * With the binary codec, each event is encoded once by `encode` (which the live feed's
 * subscribers share through a cache) and its bytes ride in the message's unknown fields under
 * field 1: protobuf-es writes unknown fields verbatim, so the wire carries exactly the
 * `repeated RecordedEvent events = 1` a reflective encoding would, at a fraction of its cost.
 * The JSON codec ignores unknown fields: it gets message objects.
 */
export function* eventMessages<S extends EventListSchema>(
  schema: S,
  events: readonly RecordedEvent[],
  wire: EventWire,
  maxBytes: number,
  encode: EncodeEvent = encodeRecordedEvent,
): Generator<MessageShape<S>> {
  if (wire.jsonCodec) {
    // An estimate of each event's size: the payload plus room for the other fields.
    for (const part of bySize(events, (e) => e.data.byteLength + 128, maxBytes)) {
      yield create(schema as EventListSchema, { events: part.map((e) => fromRecordedEvent(e, wire.payloadAsJson)) }) as MessageShape<S>;
    }
    return;
  }
  // Encoded as the messages are taken, so that a long page is not held twice.
  const encoded = (function* () {
    for (const e of events) yield encode(e, wire.payloadAsJson);
  })();
  for (const part of bySize(encoded, (data) => data.byteLength + 1, maxBytes)) {
    const message = create(schema) as MessageShape<S>;
    message.$unknown = part.map((data) => ({ no: 1, wireType: WireType.LengthDelimited, data }));
    yield message;
  }
}

/** Consecutive runs of `items` of at most `maxBytes` by `size`; an item larger than that goes alone. */
function* bySize<T>(items: Iterable<T>, size: (item: T) => number, maxBytes: number): Generator<T[]> {
  let part: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const n = size(item);
    if (part.length > 0 && bytes + n > maxBytes) {
      yield part;
      part = [];
      bytes = 0;
    }
    part.push(item);
    bytes += n;
  }
  if (part.length > 0) yield part;
}

import type { MessageInitShape } from "@bufbuild/protobuf";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ProposedEventSchema, RecordedEvent as ProtoRecordedEvent } from "../../gen/eventstore/v1/eventstore_pb";

const JSON_CONTENT_TYPE = "application/json";
const BINARY_CONTENT_TYPE = "application/octet-stream";

/** An event to append. */
export interface EventData {
  type: string;
  /** Bytes as they are (application/octet-stream unless `contentType` says otherwise); anything else as JSON. */
  data?: unknown;
  contentType?: string;
  metadata?: JsonObject;
  /** A UUID; send your own so that a retried append is recognised (idempotent). */
  id?: string;
}

/** An event as stored. */
export interface RecordedEvent {
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: JsonObject;
  stream: string;
  revision: bigint;
  position: bigint;
  storedAt: Date;
  /** When links are resolved and this event was reached through a link event: that link. */
  link?: RecordedEvent;
}

export function toProposedEvent(e: EventData): MessageInitShape<typeof ProposedEventSchema> {
  const binary = e.data instanceof Uint8Array;
  const data = binary ? (e.data as Uint8Array) : new TextEncoder().encode(e.data === undefined ? "" : JSON.stringify(e.data));
  return {
    id: e.id ?? "",
    type: e.type,
    contentType: e.contentType ?? (binary ? BINARY_CONTENT_TYPE : JSON_CONTENT_TYPE),
    payload: { case: "data", value: data },
    metadata: e.metadata,
  };
}

export function fromProtoEvent(e: ProtoRecordedEvent): RecordedEvent {
  return {
    id: e.id,
    type: e.type,
    contentType: e.contentType,
    // The client never asks for DATA_ENCODING_JSON: payloads come as bytes.
    data: e.payload.case === "data" ? e.payload.value : new Uint8Array(),
    metadata: e.metadata ?? {},
    stream: e.stream,
    revision: e.revision,
    position: e.position,
    storedAt: e.storedAt ? timestampDate(e.storedAt) : new Date(0),
    link: e.link ? fromProtoEvent(e.link) : undefined,
  };
}

/** An event's data parsed as JSON. */
export function jsonData<T = unknown>(e: RecordedEvent): T {
  return JSON.parse(new TextDecoder().decode(e.data)) as T;
}

/** The type of a link event: one that points to another event. */
export const LINK_EVENT_TYPE = "$>";

/** A link event to append: it points to `event` (its stream and revision). */
export function linkTo(event: Pick<RecordedEvent, "stream" | "revision">, metadata?: JsonObject): EventData {
  return {
    type: LINK_EVENT_TYPE,
    data: new TextEncoder().encode(`${event.revision}@${event.stream}`),
    contentType: "text/plain",
    metadata,
  };
}

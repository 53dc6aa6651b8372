import { create, fromJson } from "@bufbuild/protobuf";
import { timestampFromDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import {
  AppendResponseSchema,
  RecordedEventSchema,
  StreamInfoSchema,
  type AppendResponse,
  type RecordedEvent as ProtoRecordedEvent,
  type StreamInfo as ProtoStreamInfo,
} from "../../gen/eventstore/v1/eventstore_pb";
import { JSON_CONTENT_TYPE, type RecordedEvent } from "../domain";
import type { AppendResult, StreamInfo } from "../store";

export function fromAppendResult(r: AppendResult): AppendResponse {
  return create(AppendResponseSchema, {
    stream: r.stream,
    revision: r.revision,
    positions: r.positions,
    eventIds: r.eventIds,
    committedAt: timestampFromDate(r.committedAt),
  });
}

export function fromRecordedEvent(e: RecordedEvent, asJson: boolean): ProtoRecordedEvent {
  return create(RecordedEventSchema, {
    id: e.id,
    type: e.type,
    contentType: e.contentType,
    payload: payload(e, asJson),
    metadata: e.metadata as ProtoRecordedEvent["metadata"],
    stream: e.stream,
    revision: e.revision,
    position: e.position,
    storedAt: timestampFromDate(e.storedAt),
    // A link's data, "<revision>@<stream>", is never JSON: it always goes as bytes.
    link: e.link ? fromRecordedEvent(e.link, false) : undefined,
  });
}

function payload(e: RecordedEvent, asJson: boolean): ProtoRecordedEvent["payload"] {
  if (asJson && e.contentType === JSON_CONTENT_TYPE && e.data.byteLength > 0) {
    try {
      return { case: "json", value: fromJson(ValueSchema, JSON.parse(Buffer.from(e.data).toString("utf8"))) };
    } catch {
      // Not valid JSON after all: the bytes, as stored, are the honest answer.
    }
  }
  return { case: "data", value: e.data };
}

export function fromStreamInfo(s: StreamInfo): ProtoStreamInfo {
  return create(StreamInfoSchema, {
    name: s.name,
    revision: s.revision,
    position: s.position,
    firstRevision: s.firstRevision,
    createdAt: timestampFromDate(s.createdAt),
    updatedAt: timestampFromDate(s.updatedAt),
    deleted: s.deleted,
    tombstoned: s.tombstoned,
  });
}

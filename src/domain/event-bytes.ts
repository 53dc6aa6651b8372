import type { ProposedEvent, RecordedEvent } from "./event";

/** The parts of an event that take space, whether proposed or recorded. */
export type EventContent = Pick<ProposedEvent, "id" | "type" | "contentType" | "data" | "metadata">;

/**
 * The bytes an event counts for, toward the event and append limits, read pages and subscriber
 * buffers alike: its stream name, id, type and content type (UTF-8), its data, and its metadata
 * as JSON text. Whatever an event's shape, what it costs to hold is then bounded by its size:
 * counting data alone let 1 MiB of metadata per event pass every limit.
 *
 * `metadataBytes` is the metadata's JSON size when the caller has it already (the store reads
 * metadata as text): measuring it again would cost a JSON.stringify per event.
 */
export function eventBytes(stream: string, event: EventContent, metadataBytes = jsonBytes(event.metadata)): number {
  return (
    Buffer.byteLength(stream) +
    Buffer.byteLength(event.id) +
    Buffer.byteLength(event.type) +
    Buffer.byteLength(event.contentType) +
    event.data.byteLength +
    metadataBytes
  );
}

/** A recorded event's eventBytes: measured once by the store when it read the event, or now. */
export function recordedEventBytes(event: RecordedEvent): number {
  return event.bytes ?? eventBytes(event.stream, event);
}

/** The size of a JSON value's text, as JSON.stringify writes it, in UTF-8. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? "");
}

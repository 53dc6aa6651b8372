import { eventBytes, type RecordedEvent } from "../../domain";
import type { Sql } from "./sql";

export interface EventRow {
  position: bigint;
  stream: string;
  revision: bigint;
  id: string;
  type: string;
  content_type: string;
  data: Buffer;
  /** The metadata's JSON text: its size is counted without encoding it again. */
  metadata: string;
  stored_ms: number;
}

/**
 * The columns every event read selects, from `eventstore.events e`. The time comes as
 * milliseconds since the epoch (floored, as a Date holds it): a Date made from a number costs a
 * tenth of one parsed from timestamptz's text, about 0.4 µs an event when reading the log, for
 * about 0.26 µs more in PostgreSQL; the server's one thread is what limits reads. Metadata comes
 * as text (the output PostgreSQL sends for jsonb anyway, parsed here rather than in postgres.js),
 * so that its size is known without encoding it again: eventBytes then costs about 0.08 µs an
 * event, where a JSON.stringify of common metadata costs 0.6.
 */
export function eventColumns(sql: Sql) {
  return sql`e.position, e.stream, e.revision, e.id, e.type, e.content_type, e.data,
    e.metadata::text as metadata, floor(extract(epoch from e.stored_at) * 1000)::float8 as stored_ms`;
}

export function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    id: row.id,
    type: row.type,
    contentType: row.content_type,
    data: row.data,
    metadata: JSON.parse(row.metadata) as Record<string, unknown>,
    stream: row.stream,
    revision: row.revision,
    position: row.position,
    storedAt: new Date(row.stored_ms),
    bytes: rowBytes(row),
  };
}

/** A row's eventBytes (PostgreSQL's JSON text has a space after each colon and comma: a little more). */
function rowBytes(row: EventRow): number {
  return eventBytes(row.stream, { id: row.id, type: row.type, contentType: row.content_type, data: row.data, metadata: {} }, Buffer.byteLength(row.metadata));
}

/**
 * Keyset pages adapt their row count to the events' size (every field: eventBytes), so that one
 * page stays near `pageBytes` whether events are 100 bytes or 1 MiB, of data or of metadata:
 * memory per reader is bounded either way.
 */
export function nextPageSize(rows: EventRow[], pageBytes: number, maxRows: number): number {
  if (rows.length === 0) return maxRows;
  let bytes = 0;
  for (const r of rows) bytes += rowBytes(r) + 256;
  const perRow = bytes / rows.length;
  return Math.max(1, Math.min(maxRows, Math.floor(pageBytes / perRow)));
}

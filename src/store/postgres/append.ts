import { expectedRevisionToSql, type StreamAppend } from "../../domain";
import type { AppendResult } from "../event-store";
import type { Sql } from "./sql";

// Array type oids. Given the array type itself, postgres.js needs no type lookup, which it
// only has once a connection has fetched the catalog's array types.
const INT4 = 1007;
const INT8 = 1016;
const TEXT = 1009;
const BYTEA = 1001;
const UUID = 2951;
const JSONB = 3807;

interface AppendRow {
  stream: string;
  revision: bigint;
  first_position: bigint;
  stored_at: Date;
  replayed: boolean;
}

/**
 * Appends through one call of eventstore.append: the events travel as parallel arrays, so a
 * multi-stream append is still one statement, one round trip and one transaction.
 */
export async function append(sql: Sql, appends: StreamAppend[]): Promise<AppendResult[]> {
  const streams: string[] = [];
  const expected: bigint[] = [];
  const counts: number[] = [];
  const ids: string[] = [];
  const types: string[] = [];
  const contentTypes: string[] = [];
  const data: Buffer[] = [];
  const metadata: Record<string, unknown>[] = [];
  for (const a of appends) {
    streams.push(a.stream);
    expected.push(expectedRevisionToSql(a.expected));
    counts.push(a.events.length);
    for (const e of a.events) {
      ids.push(e.id);
      types.push(e.type);
      contentTypes.push(e.contentType);
      data.push(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength));
      metadata.push(e.metadata);
    }
  }
  const rows = await sql<AppendRow[]>`
    select stream, revision, first_position, stored_at, replayed
      from eventstore.append(
        ${sql.array(streams, TEXT)}, ${sql.array(expected, INT8)}, ${sql.array(counts, INT4)},
        ${sql.array(ids, UUID)}, ${sql.array(types, TEXT)}, ${sql.array(contentTypes, TEXT)},
        ${sql.array(data, BYTEA)}, ${sql.array(metadata as never[], JSONB)})`;
  return rows.map((row, i) => {
    const n = appends[i].events.length;
    return {
      stream: row.stream,
      revision: row.revision,
      positions: Array.from({ length: n }, (_, k) => row.first_position + BigInt(k)),
      eventIds: appends[i].events.map((e) => e.id),
      committedAt: row.stored_at,
      replayed: row.replayed,
    };
  });
}

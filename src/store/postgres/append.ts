import { expectedRevisionToSql, type EventStoreError, type StreamAppend } from "../../domain";
import type { AppendResult } from "../event-store";
import { toEventStoreError } from "./database-error";
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
  revision: bigint | null;
  first_position: bigint | null;
  stored_at: Date | null;
  replayed: boolean;
  error_code: string | null;
  error_detail: string | null;
}

/** What became of one caller's append in a batch: its results, or why it wrote nothing. */
export type AppendOutcome = AppendResult[] | EventStoreError;

/**
 * Runs a batch of appends, each one caller's (one stream, or several all or nothing), through
 * one call of eventstore.append_batch: one statement, one round trip, one transaction. The
 * events travel as parallel arrays. An append that fails (wrong expected revision, tombstone,
 * duplicate id) gets its error and leaves the others' results alone; anything else that goes
 * wrong fails the statement, and with it the whole batch, which then rolls back.
 */
export async function appendBatch(sql: Sql, batch: StreamAppend[][]): Promise<AppendOutcome[]> {
  const groupSizes: number[] = [];
  const streams: string[] = [];
  const expected: bigint[] = [];
  const counts: number[] = [];
  const ids: string[] = [];
  const types: string[] = [];
  const contentTypes: string[] = [];
  const data: Buffer[] = [];
  const metadata: Record<string, unknown>[] = [];
  for (const appends of batch) {
    groupSizes.push(appends.length);
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
  }
  const rows = await sql<AppendRow[]>`
    select stream, revision, first_position, stored_at, replayed, error_code, error_detail
      from eventstore.append_batch(
        ${sql.array(groupSizes, INT4)},
        ${sql.array(streams, TEXT)}, ${sql.array(expected, INT8)}, ${sql.array(counts, INT4)},
        ${sql.array(ids, UUID)}, ${sql.array(types, TEXT)}, ${sql.array(contentTypes, TEXT)},
        ${sql.array(data, BYTEA)}, ${sql.array(metadata as never[], JSONB)})`;

  let row = 0;
  return batch.map((appends) => {
    const own = rows.slice(row, (row += appends.length));
    const failed = own.find((r) => r.error_code !== null);
    if (failed) return toEventStoreError({ code: failed.error_code, detail: failed.error_detail });
    return own.map((r, i) => toResult(r, appends[i]));
  });
}

function toResult(row: AppendRow, append: StreamAppend): AppendResult {
  const first = row.first_position!;
  return {
    stream: row.stream,
    revision: row.revision!,
    positions: append.events.map((_, k) => first + BigInt(k)),
    eventIds: append.events.map((e) => e.id),
    committedAt: row.stored_at!,
    replayed: row.replayed,
  };
}

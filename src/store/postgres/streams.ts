import { EventStoreError, expectedRevisionToSql, type ExpectedRevision } from "../../domain";
import type { ListStreamsOptions, StreamInfo, StreamPage } from "../event-store";
import type { Sql } from "./sql";

interface StreamRow {
  name: string;
  revision: bigint;
  position: bigint | null;
  first_revision: bigint;
  created_at: Date;
  updated_at: Date;
  deleted: boolean;
  tombstoned: boolean;
}

function toStreamInfo(row: StreamRow): StreamInfo {
  return {
    name: row.name,
    revision: row.revision >= 0n ? row.revision : undefined,
    position: row.position ?? undefined,
    firstRevision: row.first_revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deleted: row.deleted,
    tombstoned: row.tombstoned,
  };
}

// A stream row exists once an append has locked it; only events (or a tombstone) make it real.
const EXISTS = "(revision >= 0 or tombstoned)";

export async function getStream(sql: Sql, stream: string): Promise<StreamInfo> {
  const [row] = await sql<StreamRow[]>`
    select * from eventstore.streams where name = ${stream} and ${sql.unsafe(EXISTS)}`;
  if (!row) throw new EventStoreError("STREAM_NOT_FOUND", `Stream ${stream} not found`, { stream });
  return toStreamInfo(row);
}

/** Lists streams in name (code point) order after `after`, one page plus one row to see if more follow. */
export async function listStreams(sql: Sql, options: ListStreamsOptions): Promise<StreamPage> {
  const rows = await sql<StreamRow[]>`
    select * from eventstore.streams
     where starts_with(name, ${options.prefix}::text)
       and ${sql.unsafe(EXISTS)}
       ${options.after !== undefined ? sql`and name > ${options.after}` : sql``}
       ${options.includeDeleted ? sql`` : sql`and not deleted`}
     order by name limit ${options.pageSize + 1}`;
  const more = rows.length > options.pageSize;
  const page = rows.slice(0, options.pageSize).map(toStreamInfo);
  return { streams: page, last: more ? page[page.length - 1].name : undefined };
}

export async function deleteStream(
  sql: Sql,
  stream: string,
  expected: ExpectedRevision,
  mode: "soft" | "tombstone",
): Promise<StreamInfo> {
  const [row] = await sql<StreamRow[]>`
    select * from eventstore.delete_stream(${stream}, ${expectedRevisionToSql(expected)}, ${mode === "tombstone"})`;
  return toStreamInfo(row);
}

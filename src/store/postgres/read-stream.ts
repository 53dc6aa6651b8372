import type { RecordedEvent } from "../../domain";
import { EventStoreError } from "../../domain";
import type { ReadStreamOptions } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { eventColumns, nextPageSize, toRecordedEvent, type EventRow } from "./event-row";
import type { Sql } from "./sql";

export interface PageSettings {
  pageBytes: number;
  maxPageRows: number;
}

/**
 * Reads a stream in keyset pages on revision: each page is its own short query, so a reader of
 * a million events holds one page and no transaction. Soft-deleted revisions are skipped; a
 * missing, deleted or tombstoned stream is an error before the first page.
 */
export async function* readStream(
  sql: Sql,
  stream: string,
  options: ReadStreamOptions,
  page: PageSettings,
  cancellation?: Cancellation,
): AsyncGenerator<RecordedEvent[]> {
  const signal = cancellation?.signal;
  const [head] = await cancellable(
    sql<{ first_revision: bigint; revision: bigint; deleted: boolean; tombstoned: boolean }[]>`
      select first_revision, revision, deleted, tombstoned from eventstore.streams where name = ${stream}`,
    cancellation,
  );
  if (!head || head.revision < 0n) throw new EventStoreError("STREAM_NOT_FOUND", `Stream ${stream} not found`, { stream });
  if (head.tombstoned) throw new EventStoreError("STREAM_TOMBSTONED", `Stream ${stream} is tombstoned`, { stream });
  if (head.deleted) throw new EventStoreError("STREAM_DELETED", `Stream ${stream} is deleted`, { stream });

  const forwards = options.direction === "forwards";
  let remaining = options.limit && options.limit > 0n ? options.limit : -1n;
  let from = options.fromRevision ?? (forwards ? head.first_revision : head.revision);
  let size = Math.min(100, page.maxPageRows);
  while (remaining !== 0n && !signal?.aborted) {
    const take = remaining > 0n && remaining < BigInt(size) ? Number(remaining) : size;
    const rows = await cancellable(
      forwards
        ? sql<EventRow[]>`
            select ${eventColumns(sql)} from eventstore.events e
             where e.stream = ${stream} and e.revision >= ${from > head.first_revision ? from : head.first_revision}
             order by e.revision asc limit ${take}`
        : sql<EventRow[]>`
            select ${eventColumns(sql)} from eventstore.events e
             where e.stream = ${stream} and e.revision <= ${from} and e.revision >= ${head.first_revision}
             order by e.revision desc limit ${take}`,
      cancellation,
    );
    if (rows.length === 0) return;
    yield rows.map(toRecordedEvent);
    if (remaining > 0n) remaining -= BigInt(rows.length);
    if (rows.length < take) return;
    const last = rows[rows.length - 1].revision;
    from = forwards ? last + 1n : last - 1n;
    if (from < 0n) return;
    size = nextPageSize(rows, page.pageBytes, page.maxPageRows);
  }
}

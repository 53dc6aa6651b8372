import type { RecordedEvent } from "../../domain";
import { EventStoreError } from "../../domain";
import type { ReadStreamOptions } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { nextPageSize, toRecordedEvent } from "./event-row";
import { cutByBytes, pageSql } from "./page-sql";
import type { ScanSlots } from "./scan-slots";
import type { Sql } from "./sql";

export interface PageSettings {
  /** About the most bytes of events in one page, every page (see pageSql). */
  pageBytes: number;
  maxPageRows: number;
  /** The most log positions one filtered statement scans; unset: DEFAULT_SCAN_WINDOW. */
  scanWindow?: number;
  /** Where filtered statements wait for their turn; unset: they do not wait. */
  scanSlots?: ScanSlots;
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
      pageSql(sql, {
        where: forwards
          ? sql`e.stream = ${stream} and e.revision >= ${from > head.first_revision ? from : head.first_revision}`
          : sql`e.stream = ${stream} and e.revision <= ${from} and e.revision >= ${head.first_revision}`,
        order: forwards ? sql`e.revision asc` : sql`e.revision desc`,
        limit: take,
        pageBytes: page.pageBytes,
      }),
      cancellation,
    );
    if (rows.length === 0) return;
    yield rows.map(toRecordedEvent);
    if (remaining > 0n) remaining -= BigInt(rows.length);
    if (rows.length < take && !cutByBytes(rows, page.pageBytes)) return;
    const last = rows[rows.length - 1].revision;
    from = forwards ? last + 1n : last - 1n;
    if (from < 0n) return;
    size = nextPageSize(rows, page.pageBytes, page.maxPageRows);
  }
}

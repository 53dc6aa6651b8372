import type { PendingQuery, Row } from "postgres";
import { eventColumns, type EventRow } from "./event-row";
import type { Sql } from "./sql";

type Fragment = PendingQuery<Row[]>;

export interface PageQuery {
  /** The conditions on `eventstore.events e`. */
  where: Fragment;
  /** The page's order on `e`, such as sql`e.position desc`. */
  order: Fragment;
  /** The most rows. */
  limit: number;
  /** The most bytes of events (as eventBytes counts them, about): see pageSql. */
  pageBytes: number;
}

/** A page's row: the event, and the bytes of the page up to and including it. */
export type PageRow = EventRow & { upto: number };

/**
 * One keyset page of events, cut in the database at about `pageBytes`: the rows in order while
 * the ones before them hold less than that, so at least one. A page of a number of rows alone
 * could be 1,000 events of 1 MiB, a gigabyte in this process. Only the rows in the page are
 * sent and have their columns built (metadata as text); the sizes of the others are read from
 * the rows as stored, without reading their values: every field's length, metadata's stored
 * size (its text, only when it is compressed and the stored size says nothing). Cutting pages
 * of 1,000 small events this way cost nothing measurable here, and a page of 200 KB events
 * took 35 ms (21 rows) where 1,000 rows took 1.8 s.
 *
 * jsonb's stored size is near its text's, except for strings of characters that JSON escapes
 * (a control character is 1 byte stored, 6 as text): a page of those may be some times larger.
 */
export function pageSql(sql: Sql, q: PageQuery): PendingQuery<PageRow[]> {
  // Per row, as nextPageSize counts one: eventBytes, and 256 more (292 with the id, 36 characters).
  // The statement's text is kept short before its conditions: pg_stat_activity shows only the
  // first 1,024 bytes, and an operator looking at a slow read wants to see its filter.
  const bytes = sql`octet_length(e.stream) + octet_length(e.type) + octet_length(e.content_type) + octet_length(e.data) + 292
    + case when pg_column_compression(e.metadata) is null then pg_column_size(e.metadata) else octet_length(e.metadata::text) end`;
  return sql<PageRow[]>`
    select ${eventColumns(sql)}, e.upto::float8 as upto from (
      select e.*, sum(e.bytes) over (order by ${q.order} rows unbounded preceding) as upto from (
        select e.*, ${bytes} as bytes from eventstore.events e where ${q.where} order by ${q.order} limit ${q.limit}
      ) e
    ) e where e.upto - e.bytes < ${q.pageBytes} order by ${q.order}`;
}

/**
 * Whether more rows may follow a page that holds fewer than its limit: the byte cut stopped it.
 * (A page that ends before the cut ended because no row was left.)
 */
export function cutByBytes(rows: PageRow[], pageBytes: number): boolean {
  return rows.length > 0 && rows[rows.length - 1].upto >= pageBytes;
}

/** A page read with the log head, in one snapshot, and what the statement took in the database. */
export interface HeadAndPage {
  /** Every position at or below it that will ever commit is in the statement's snapshot. */
  head: bigint;
  rows: PageRow[];
  /** The statement's time in the database, from its start to its last row (not the wait for a connection). */
  tookMs: number;
}

/** A page query (pageSql) read with the log head: the head row always comes back, with no event columns when the page is empty. */
export function headAndPageSql(sql: Sql, page: PendingQuery<PageRow[]>) {
  return sql<(PageRow & { head: bigint; took_ms: number })[]>`
    select h.position as head, (extract(epoch from clock_timestamp() - statement_timestamp()) * 1000)::float8 as took_ms, p.*
      from eventstore.log h left join lateral (${page}) p on true`;
}

export function toHeadAndPage(rows: (PageRow & { head: bigint; took_ms: number })[]): HeadAndPage {
  const last = rows[rows.length - 1];
  return { head: last.head, rows: rows[0].position === null ? [] : rows, tookMs: last.took_ms };
}

import type { RecordedEvent } from "../../domain";
import { hasRegexMatchers, matchesRegexMatchers } from "../../domain/event-matcher";
import type { ReadAllOptions } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { eventColumns, nextPageSize, toRecordedEvent, type EventRow } from "./event-row";
import { filterSql } from "./filter-sql";
import type { PageSettings } from "./read-stream";
import type { Sql } from "./sql";

/**
 * Reads the log in keyset pages on position, filtered in SQL and then, for regular
 * expressions, in memory: pages continue after the last row scanned, and the limit counts only
 * the events that pass. Positions commit in order (see the log head migration), so paging by
 * position alone never skips an event committed later.
 */
export async function* readAll(
  sql: Sql,
  options: ReadAllOptions,
  page: PageSettings,
  cancellation?: Cancellation,
): AsyncGenerator<RecordedEvent[]> {
  const signal = cancellation?.signal;
  const forwards = options.direction === "forwards";
  const where = filterSql(sql, options.filter);
  const passes = hasRegexMatchers(options.filter)
    ? (e: RecordedEvent) => matchesRegexMatchers(options.filter, e)
    : undefined;
  let remaining = options.limit && options.limit > 0n ? options.limit : -1n;
  let from =
    options.fromPosition ??
    (forwards ? 0n : (await cancellable(sql<{ position: bigint }[]>`select position from eventstore.log`, cancellation))[0].position);
  let size = Math.min(100, page.maxPageRows);
  while (remaining !== 0n && !signal?.aborted) {
    // Rows that the regular expressions may drop do not count: scan whole pages then.
    const take = !passes && remaining > 0n && remaining < BigInt(size) ? Number(remaining) : size;
    const rows = await cancellable(
      forwards
        ? sql<EventRow[]>`
            select ${eventColumns(sql)} from eventstore.events e
             where e.position >= ${from} and ${where} order by e.position asc limit ${take}`
        : sql<EventRow[]>`
            select ${eventColumns(sql)} from eventstore.events e
             where e.position <= ${from} and ${where} order by e.position desc limit ${take}`,
      cancellation,
    );
    if (rows.length === 0) return;
    const scanned = rows.map(toRecordedEvent);
    let events = passes ? scanned.filter(passes) : scanned;
    if (remaining > 0n && BigInt(events.length) > remaining) events = events.slice(0, Number(remaining));
    if (events.length > 0) yield events;
    if (remaining > 0n) remaining -= BigInt(events.length);
    if (rows.length < take) return;
    const last = rows[rows.length - 1].position;
    from = forwards ? last + 1n : last - 1n;
    if (from < 1n) return;
    size = nextPageSize(rows, page.pageBytes, page.maxPageRows);
  }
}

import type { RecordedEvent } from "../../domain";
import { hasRegexMatchers, matchesRegexMatchers } from "../../domain/event-matcher";
import type { ReadAllOptions } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { nextPageSize, toRecordedEvent } from "./event-row";
import { andAll, filterConditions } from "./filter-sql";
import { cutByBytes, headAndPageSql, pageSql, toHeadAndPage, type PageRow } from "./page-sql";
import type { PageSettings } from "./read-stream";
import { DEFAULT_SCAN_WINDOW, firstWindow, MAX_POSITION, nextWindow } from "./scan-window";
import type { Sql } from "./sql";

/**
 * Reads the log in keyset pages on position, filtered in SQL and then, for regular
 * expressions, in memory: pages continue after the last row scanned, and the limit counts only
 * the events that pass. Positions commit in order (see the log head migration), so paging by
 * position alone never skips an event committed later.
 *
 * A filter in SQL may pass few events, and a statement would then read the log far beyond its
 * page: each statement scans a window of positions (sized by what the last one took, at most
 * `scanWindow`: scan-window.ts), and the read walks on window by window until the page fills
 * or it passes the log head, read by the same statement. Each such statement waits for a scan
 * slot (scan-slots.ts).
 * Positions commit in order and may skip numbers, so a range of positions holds every event in
 * it that will ever commit once the head has passed it.
 */
export async function* readAll(
  sql: Sql,
  options: ReadAllOptions,
  page: PageSettings,
  cancellation?: Cancellation,
): AsyncGenerator<RecordedEvent[]> {
  const signal = cancellation?.signal;
  const forwards = options.direction === "forwards";
  const conditions = filterConditions(sql, options.filter);
  const where = andAll(sql, conditions);
  // Without a condition in SQL, a statement reads no more rows than it returns.
  const maxWindow = conditions.length > 0 ? BigInt(page.scanWindow ?? DEFAULT_SCAN_WINDOW) : undefined;
  const order = forwards ? sql`e.position asc` : sql`e.position desc`;
  const passes = hasRegexMatchers(options.filter)
    ? (e: RecordedEvent) => matchesRegexMatchers(options.filter, e)
    : undefined;
  let remaining = options.limit && options.limit > 0n ? options.limit : -1n;
  let from =
    options.fromPosition ??
    (forwards ? 0n : (await cancellable(sql<{ position: bigint }[]>`select position from eventstore.log`, cancellation))[0].position);
  let size = Math.min(100, page.maxPageRows);
  let window = maxWindow && firstWindow(maxWindow, size);
  while (remaining !== 0n && !signal?.aborted) {
    if (from < 1n && !forwards) return;
    // Rows that the regular expressions may drop do not count: scan whole pages then.
    const take = !passes && remaining > 0n && remaining < BigInt(size) ? Number(remaining) : size;
    const [low, high] = window === undefined ? [undefined, undefined] : forwards ? forwardWindow(from, window) : backwardWindow(from, window);
    const range =
      low === undefined ? (forwards ? sql`e.position >= ${from}` : sql`e.position <= ${from}`)
      : sql`e.position between ${low} and ${high}`;
    const query = pageSql(sql, { where: sql`${range} and ${where}`, order, limit: take, pageBytes: page.pageBytes });
    // A scan (a window of the log, or a page that regular expressions match here) waits for a
    // slot, and is matched within it (scan-slots.ts).
    const scan = async () => {
      let rows: PageRow[];
      let head = 0n;
      if (low === undefined) {
        rows = await cancellable(query, cancellation);
      } else {
        let tookMs: number;
        ({ rows, head, tookMs } = toHeadAndPage(await cancellable(headAndPageSql(sql, query), cancellation)));
        window = nextWindow(window!, maxWindow!, tookMs);
      }
      const scanned = rows.map(toRecordedEvent);
      return { rows, head, matched: passes ? scanned.filter(passes) : scanned };
    };
    const isScan = low !== undefined || passes !== undefined;
    const { rows, head, matched } = isScan && page.scanSlots ? await page.scanSlots.run(scan, signal, options.reader) : await scan();
    if (rows.length > 0) {
      let events = matched;
      if (remaining > 0n && BigInt(events.length) > remaining) events = events.slice(0, Number(remaining));
      if (events.length > 0) yield events;
      if (remaining > 0n) remaining -= BigInt(events.length);
    }
    if (rows.length === take || cutByBytes(rows, page.pageBytes)) {
      // The page filled: the next one starts after its last row.
      const last = rows[rows.length - 1].position;
      from = forwards ? last + 1n : last - 1n;
      size = nextPageSize(rows, page.pageBytes, page.maxPageRows);
    } else if (low === undefined || high === undefined) {
      return;
    } else if (forwards) {
      // The window is read to its end: walk on, unless it reached the head.
      if (high >= head || high === MAX_POSITION) return;
      from = high + 1n;
    } else {
      if (low <= 1n) return;
      // Started above the head: jump down to it rather than walk through empty windows.
      from = low > head ? head : low - 1n;
    }
  }
}

/** Positions `from` up to `window` of them, within bigint. */
function forwardWindow(from: bigint, window: bigint): [bigint, bigint] {
  return [from, from > MAX_POSITION - window + 1n ? MAX_POSITION : from + window - 1n];
}

/** Positions down from `from`, at most `window` of them, from 1. */
function backwardWindow(from: bigint, window: bigint): [bigint, bigint] {
  return [from - window + 1n < 1n ? 1n : from - window + 1n, from];
}

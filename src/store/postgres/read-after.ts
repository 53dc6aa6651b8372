import { hasRegexMatchers, matchesFilter } from "../../domain/event-matcher";
import type { CatchUpPage, Selection } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { toRecordedEvent } from "./event-row";
import { andAll, filterConditions } from "./filter-sql";
import { cutByBytes, headAndPageSql, pageSql, toHeadAndPage } from "./page-sql";
import type { PageSettings } from "./read-stream";
import { DEFAULT_SCAN_WINDOW, firstWindow, MAX_POSITION, nextWindow } from "./scan-window";
import type { Sql } from "./sql";

/**
 * A walk through windows that found nothing returns what it reached after this long, so that
 * a subscription whose filter matches nothing for a while can still tell its consumer where it
 * stands (its checkpoints) rather than wait for the whole walk.
 */
const WALK_MS = 250;

/**
 * The window each filter's last page ended with. A subscription reads page after page with the
 * same filter: each starts where the last left off, rather than at four pages' rows, which for
 * the costliest filters is a statement of 200 ms.
 */
const windows = new WeakMap<object, bigint>();

/**
 * One keyset page of a catch-up read: selected events after `after`, in log order, at most
 * `limit` rows and about `page.pageBytes` of them.
 *
 * The head is read with each statement. Positions commit in order, so every event at or below
 * that head is in the statement's snapshot: when the page is not full, the log is known to be
 * scanned up to the head, even if the filter matched nothing there.
 *
 * With a filter in SQL, a statement scans a window of positions (see readAll and
 * scan-window.ts); windows that select nothing are walked through, up to the head, or for WALK_MS.
 */
export async function readAfter(
  sql: Sql,
  selection: Selection,
  after: bigint,
  limit: number,
  page: PageSettings,
  cancellation?: Cancellation,
): Promise<CatchUpPage> {
  const stream = selection.stream;
  const conditions = filterConditions(sql, selection.filter);
  const where = andAll(sql, conditions);
  // Without a filter in SQL a statement reads no more rows than it returns (the stream's own,
  // by its index, for a stream).
  const maxWindow = conditions.length > 0 ? BigInt(page.scanWindow ?? DEFAULT_SCAN_WINDOW) : undefined;
  let window = maxWindow && (windows.get(selection.filter) ?? firstWindow(maxWindow, limit));
  const regex = hasRegexMatchers(selection.filter);
  const started = Date.now();
  let from = after;
  for (;;) {
    const to = window === undefined ? undefined : from > MAX_POSITION - window ? MAX_POSITION : from + window;
    // One statement, so the head and the page share a snapshot.
    const query = pageSql(sql, {
      where: sql`e.position > ${from} ${to === undefined ? sql`` : sql`and e.position <= ${to}`}
        ${stream === undefined ? sql`` : sql`and e.stream = ${stream}`}
        ${selection.afterRevision === undefined ? sql`` : sql`and e.revision > ${selection.afterRevision}`}
        and ${where}`,
      order: sql`e.position`,
      limit,
      pageBytes: page.pageBytes,
    });
    const read = async () => {
      const { head, rows: found, tookMs } = toHeadAndPage(await cancellable(headAndPageSql(sql, query), cancellation));
      // The SQL is a superset (regular expressions run here only); the in-memory filter decides.
      return { head, found, tookMs, events: found.map(toRecordedEvent).filter((e) => matchesFilter(selection.filter, e)) };
    };
    // A scan (a window of the log, or rows that regular expressions match here) waits its turn
    // with the others, and is matched within it (scan-slots.ts); a read of a stream or of the
    // whole log does what its reader reads, and does not.
    const isScan = window !== undefined || regex;
    const { head, found, tookMs, events } = isScan && page.scanSlots ? await page.scanSlots.run(read, cancellation?.signal, selection.reader) : await read();
    if (window !== undefined) {
      window = nextWindow(window, maxWindow!, tookMs);
      windows.set(selection.filter, window);
    }
    const last = found.length > 0 ? found[found.length - 1].position : from;
    if (found.length === limit || cutByBytes(found, page.pageBytes)) return { events, reached: last, end: false };
    if (to === undefined || to >= head) {
      return { events, reached: last > head ? last : head > after ? head : after, end: true };
    }
    // The window is scanned to its end, below the head.
    if (events.length > 0 || Date.now() - started >= WALK_MS) return { events, reached: to, end: false };
    from = to;
  }
}

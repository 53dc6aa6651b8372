/**
 * How many log positions a filtered read statement scans. A filter that matches few events
 * would otherwise have one statement read the whole log for a page: 200,000 events took 3.8 s
 * here with a legal `in` filter, and on PGlite such a statement holds this process's only
 * thread (the statement timeout cannot stop it there). Readers walk the log a window at a time
 * instead, and a window costs its positions times what the filter costs a row.
 *
 * That cost ranges over a thousandfold among legal filters (measured here, 2 busy cores): 0.3-0.5
 * µs a row for a type or an `in` list of 99 values, 25 µs for 100 ordered comparisons of a
 * metadata string (250 µs the first time a connection runs one), 1 ms and more for each
 * comparison of a 200 KB metadata value. So the window follows what the statements take in the
 * database: it starts at four pages' rows (a page of a filter that passes a quarter of the events
 * then still takes one statement), grows up to eightfold a statement while they take less than
 * SCAN_TARGET_MS, and shrinks in proportion when they take more, down to MIN_WINDOW, never
 * past the scan-window setting. Over 200,000 events: 23 statements (median 15 ms) for the `in`
 * list, 145 (median 52 ms at a 50 ms target) for the comparisons, where one statement took 6 s.
 *
 * On PGlite each statement's answer comes back through its socket, so the event loop runs
 * between windows and other clients are served there without an explicit yield: a 5 ms timer
 * was never held longer than about one statement (scan-window-embedded.test.ts).
 */
export const DEFAULT_SCAN_WINDOW = 10_000;

/**
 * What one windowed statement aims to take in the database: a small stall on PGlite, with room
 * for a machine whose cores are busy elsewhere (at 50 ms, statements ran past 100 ms at a load
 * of 5 on 2 cores). A statement costs about 1 ms more in round trips, so 20 ms of work loses
 * about 5% to them, and only for filters that cost more than 2 µs a row: cheaper ones reach
 * the scan-window setting first.
 */
export const SCAN_TARGET_MS = 20;

const MIN_WINDOW = 16n;
const MAX_GROWTH = 8n;

/** The largest position PostgreSQL's bigint holds: windows end there. */
export const MAX_POSITION = 2n ** 63n - 1n;

/** The first window of a read whose pages take `rows` rows. */
export function firstWindow(limit: bigint, rows: number): bigint {
  return clamp(4n * BigInt(rows), limit);
}

/** The window after one of `size` positions whose statement took `tookMs` in the database. */
export function nextWindow(size: bigint, limit: bigint, tookMs: number): bigint {
  const scaled = tookMs > 0 ? BigInt(Math.floor((Number(size) * SCAN_TARGET_MS) / tookMs)) : size * MAX_GROWTH;
  return clamp(scaled < size * MAX_GROWTH ? scaled : size * MAX_GROWTH, limit);
}

function clamp(size: bigint, limit: bigint): bigint {
  const low = MIN_WINDOW < limit ? MIN_WINDOW : limit;
  return size < low ? low : size > limit ? limit : size;
}

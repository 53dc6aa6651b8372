/**
 * The most log positions one filtered read statement scans. A filter that matches few events
 * would otherwise have one statement read the whole log for a page: 200,000 events took 3.8 s
 * here with a legal `in` filter, and on PGlite such a statement holds this process's only thread
 * (the statement timeout cannot stop it there). Readers walk the log a window at a time instead,
 * and a window costs at most its positions times what the filter costs a row.
 *
 * Measured here (2 busy cores; the worst small-event filters: `in` with 99 values, 100 metadata
 * comparisons): 0.3-3 µs a row on PostgreSQL, 0.5-2 µs on PGlite, so 10,000 positions take
 * about 5-30 ms; 50,000 took up to 150-300 ms. A page of a filter that selects one event in ten
 * still fits in one window of 10,000 (pages hold at most 1,000 rows), so dense reads stay at one
 * statement a page; unfiltered reads need no window (they read what they return).
 *
 * Events of hundreds of KiB cost a row far more (each metadata comparison reads the value
 * again: 1 ms a row for one, 140 ms for 100, on 200 KB of metadata): the window bounds the
 * rows such a statement reads, and the statement timeout what they may cost.
 */
export const DEFAULT_SCAN_WINDOW = 10_000;

/** The largest position PostgreSQL's bigint holds: windows end there. */
export const MAX_POSITION = 2n ** 63n - 1n;

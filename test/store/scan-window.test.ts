import fc from "fast-check";
import { DEFAULT_LIMITS, EMPTY_FILTER, validateFilter, type EventFilter, type RecordedEvent } from "../../src/domain";
import { matchesFilter } from "../../src/domain/event-matcher";
import { openStore, type EventStore } from "../../src/store";
import { filterSql } from "../../src/store/postgres/filter-sql";
import { readAfter } from "../../src/store/postgres/read-after";
import { readAll } from "../../src/store/postgres/read-all";
import type { PageSettings } from "../../src/store/postgres/read-stream";
import { connect, type Sql } from "../../src/store/postgres/sql";
import { writeLog } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { collect, event } from "./store-contract";

// Filtered reads scan the log a window of positions at a time: whatever the window, the page
// size and the byte cut, they return exactly what one scan of the whole log returns.

const EVENTS = 3000;
const MAX_POSITION = 2n ** 63n - 1n;

let db: TestDatabase;
let store: EventStore;
let sql: Sql;
let events: RecordedEvent[];
let statements: string[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  for (let done = 0; done < EVENTS; done += 500) {
    const batch = Array.from({ length: 500 }, (_, j) => {
      const i = done + j;
      const metadata: Record<string, unknown> = { tenant: `t${i % 100}` };
      if (i % 397 === 5) metadata.rare = "yes";
      return event(["A", "B", "C"][i % 3], { i }, metadata);
    });
    await store.append([{ stream: `sw-${done / 500}`, expected: "any", events: batch }]);
  }
  events = await collect(store.readAll({ direction: "forwards", filter: EMPTY_FILTER }));
  sql = connect({ url: db.url, max: 2 });
  // postgres.js calls `debug` with every statement it sends.
  (sql as unknown as { options: { debug: (c: number, q: string) => void } }).options.debug = (_c, q) => void statements.push(q);
}, 60_000);

afterAll(async () => {
  await sql?.end();
  await store?.close();
  await db?.drop();
});

const FILTERS: Record<string, EventFilter> = {
  "one event in 397": { eventTypes: [], matchers: [{ field: { metadataKey: "rare" }, operator: "eq", value: "yes" }] },
  "one tenant in 100, in a list": { eventTypes: [], matchers: [{ field: { metadataKey: "tenant" }, operator: "in", values: ["t7", "nobody"] }] },
  "a type and a tenant": { eventTypes: ["C"], matchers: [{ field: { metadataKey: "tenant" }, operator: "eq", value: "t4" }] },
  "a tenant and a regular expression": {
    eventTypes: [],
    matchers: [
      { field: { metadataKey: "tenant" }, operator: "in", values: ["t1", "t2", "t3"] },
      { field: { property: "stream" }, operator: "regex", value: "^sw-[024]$" },
    ],
  },
  "nothing": { eventTypes: ["Nope"], matchers: [] },
  "most events": { eventTypes: [], matchers: [{ field: { metadataKey: "tenant" }, operator: "not_in", values: ["t0"] }] },
};

const settings = (maxPageRows: number, pageBytes: number, scanWindow: number): PageSettings => ({ maxPageRows, pageBytes, scanWindow });

describe("a windowed scan", () => {
  it("reads the whole log the way one scan does: both directions, any start, limit, page size and window", async () => {
    const positions = events.map((e) => e.position);
    const head = positions[positions.length - 1];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(FILTERS)),
        fc.constantFrom<"forwards" | "backwards">("forwards", "backwards"),
        fc.option(fc.oneof(fc.constantFrom(...positions), fc.constantFrom(0n, 1n, head + 5n, MAX_POSITION)), { nil: undefined }),
        fc.option(fc.bigInt({ min: 1n, max: 40n }), { nil: undefined }),
        fc.integer({ min: 1, max: 50 }),
        fc.constantFrom(600, 5000, 1 << 22),
        fc.constantFrom(1, 7, 37, 500, 5000),
        async (name, direction, fromPosition, limit, maxPageRows, pageBytes, scanWindow) => {
          const filter = validateFilter(FILTERS[name], DEFAULT_LIMITS);
          const got = await collect(readAll(sql, { direction, filter, fromPosition, limit }, settings(maxPageRows, pageBytes, scanWindow)));
          let expected = events.filter((e) => matchesFilter(filter, e));
          if (direction === "backwards") expected.reverse();
          if (fromPosition !== undefined) {
            expected = expected.filter((e) => (direction === "forwards" ? e.position >= fromPosition : e.position <= fromPosition));
          }
          expect(got.map((e) => e.position)).toEqual(expected.slice(0, limit === undefined ? undefined : Number(limit)).map((e) => e.position));
        },
      ),
      { numRuns: 150 },
    );
  }, 120_000);

  it("of catch-up pages walks to the head the way one scan does, with a stream or without", async () => {
    const positions = events.map((e) => e.position);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(FILTERS)),
        fc.option(fc.constantFrom("sw-1", "sw-4"), { nil: undefined }),
        fc.oneof(fc.constant(0n), fc.constantFrom(...positions)),
        fc.integer({ min: 1, max: 60 }),
        fc.constantFrom(600, 1 << 22),
        fc.constantFrom(1, 37, 500, 5000),
        async (name, stream, after, limit, pageBytes, scanWindow) => {
          const filter = validateFilter(FILTERS[name], DEFAULT_LIMITS);
          const got: RecordedEvent[] = [];
          let position = after;
          for (let calls = 0; ; calls++) {
            expect(calls).toBeLessThan(10_000);
            const page = await readAfter(sql, { stream, filter }, position, limit, settings(1000, pageBytes, scanWindow));
            expect(page.reached).toBeGreaterThanOrEqual(position);
            for (const e of page.events) expect(e.position <= page.reached && e.position > position).toBe(true);
            got.push(...page.events);
            position = page.reached;
            if (page.end) break;
          }
          const expected = events.filter((e) => e.position > after && (stream === undefined || e.stream === stream) && matchesFilter(filter, e));
          expect(got.map((e) => e.position)).toEqual(expected.map((e) => e.position));
          expect(position).toBe(events[events.length - 1].position);
        },
      ),
      { numRuns: 100 },
    );
  }, 120_000);

  it("keeps a read whose filter passes most events at one statement a page, as an unfiltered one", async () => {
    const count = async (filter: EventFilter) => {
      statements = [];
      const pages = [];
      for await (const page of readAll(sql, { direction: "forwards", filter }, settings(1000, 1 << 22, 10_000))) pages.push(page.length);
      return { pages, statements: statements.filter((s) => s.includes("eventstore.events")).length };
    };
    const dense = await count(validateFilter(FILTERS["most events"], DEFAULT_LIMITS));
    const unfiltered = await count(EMPTY_FILTER);
    expect(unfiltered).toEqual({ pages: [100, 1000, 1000, 900], statements: 4 });
    expect(dense.statements).toBe(dense.pages.length);
    expect(dense.pages.reduce((a, b) => a + b, 0)).toBe(EVENTS - EVENTS / 100);
  });
});

describe("a statement of a sparse read", () => {
  // Windowed statements take about 20 ms here, the first of each read up to 100 ms (a connection
  // runs a new statement slower the first time), and some times more on a busy machine.
  const TIMEOUT_MS = 500;
  let big: TestDatabase;

  beforeAll(async () => {
    big = await createTestDatabase();
    const writer = await openStore({ location: { kind: "postgres", url: big.url } });
    await writeLog(writer, 200_000);
    await writer.close();
  }, 180_000);
  afterAll(async () => big?.drop());

  // 100 comparisons an event (all but the last true): 25-250 µs an event here, seconds for one
  // statement over the whole log; windowed reads size their windows to about 20 ms.
  const costly: EventFilter = {
    eventTypes: [],
    matchers: [
      ...Array.from({ length: 99 }, () => ({ field: { metadataKey: "tenant" }, operator: "gt" as const, value: "" })),
      { field: { metadataKey: "tenant" }, operator: "lt", value: "" },
    ],
  };

  it(`stays within a statement timeout of ${TIMEOUT_MS} ms over 200,000 events that one statement over the log passes`, async () => {
    const windowed = await openStore({ location: { kind: "postgres", url: big.url }, migrate: false, statementTimeoutMs: TIMEOUT_MS });
    const whole = connect({ url: big.url, max: 1, statementTimeoutMs: TIMEOUT_MS });
    try {
      for (const direction of ["forwards", "backwards"] as const) {
        expect(await collect(windowed.readAll({ direction, filter: costly }))).toEqual([]);
      }
      let page = await windowed.readAfter({ filter: costly }, 0n, 100);
      for (let calls = 0; !page.end; calls++) {
        expect(calls).toBeLessThan(1000);
        expect(page.events).toEqual([]);
        page = await windowed.readAfter({ filter: costly }, page.reached, 100);
      }
      expect(page.reached).toBe(200_000n);
      // The same filter over the whole log in one statement runs past the timeout.
      await expect(whole`select e.position from eventstore.events e where ${filterSql(whole, costly)} limit 1`).rejects.toMatchObject({
        code: "57014",
      });
    } finally {
      await windowed.close();
      await whole.end();
    }
  }, 60_000);
});

import fc from "fast-check";
import { randomUUID } from "node:crypto";
import {
  DEFAULT_LIMITS,
  EMPTY_FILTER,
  filterTimeMicros,
  validateFilter,
  type EventFilter,
  type JsonValue,
  type Matcher,
  type Operator,
  type RecordedEvent,
} from "../../src/domain";
import { consumerGroupMember } from "../../src/domain/consumer-group";
import { matchesFilter, matchesRegexMatchers } from "../../src/domain/event-matcher";
import { openStore, type EventStore } from "../../src/store";
import { filterSql } from "../../src/store/postgres/filter-sql";
import { readAll } from "../../src/store/postgres/read-all";
import { connect, type Sql } from "../../src/store/postgres/sql";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { collect, event } from "./store-contract";

// Live subscribers filter in memory what catch-up reads filter in SQL: here both run on the same
// events, stored in a real PostgreSQL, for many random filters, and must select the same ones.

const DATA_SEED = Number(process.env.FILTER_DATA_SEED ?? Date.now() % 2 ** 31);

// Characters whose UTF-16 order differs from their code point order (astral vs U+E000..U+FFFF),
// non-ASCII, case and the category dash.
const CHARS = ["a", "b", "B", "-", "é", "中", "😀", "𝔸", "\uE000", "\uFFFD", "\uFF21"];
const CATEGORIES = ["a", "ab", "B", "é", "😀", "\uE000", "a-b", ""];
const TYPES = ["Opened", "Closed", "opened", "Öffnen", "😀", "\uE000x", "a-b"];
const KEYS = ["tenant", "n", "tags", "obj", "flag", "😀", "a-b"];
const STRINGS = ["", "t1", "t2", "T1", "a", "é", "😀", "𝔸", "\uE000", "\uFFFD", "1", "true", "null"];
const NUMBERS = [0, 1, -1, 2, 3, 0.5, -1.5, 10.25, 0.1, 1e21, 1e-7, 2 ** 53, -(2 ** 31)];
const PATTERNS = [
  "^t[12]$", "^.$", "^..$", "😀", "^\\x{1F600}", "[\\x{E000}-\\x{FFFF}]", "[\\x{10000}-\\x{10FFFF}]", "a|é",
  "^$", "\\d", "^[^a]", "-", "^Op", "ed$", "\\p{Lu}", "^[0-9a-f]{8}-", "\\w+", "^(?:a|b)+-",
  "(?i)^t1$", "\\pL{2}",
];
// Metadata as other writers may send it: jsonb keeps these decimals as written.
const RAW_METADATA = [
  `{"n": 1.0, "tenant": "t1", "obj": {"b": 2.50, "a": [1.0, "x"]}}`,
  `{"n": 1e2, "tags": [1.0, 2], "flag": null}`,
  `{"n": -0, "tenant": "\\ud83d\\ude00", "a-b": {}}`,
  `{"n": 2.50, "obj": {"a": [1, "x"], "b": 2.5}, "tags": []}`,
];

const string = fc.oneof(fc.constantFrom(...STRINGS), fc.array(fc.constantFrom(...CHARS), { maxLength: 3 }).map((cs) => cs.join("")));
const number = fc.oneof(fc.constantFrom(...NUMBERS), fc.integer({ min: -3, max: 3 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
const leaf: fc.Arbitrary<JsonValue> = fc.oneof(string, number, fc.boolean(), fc.constant(null));
const { json } = fc.letrec<{ json: JsonValue }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small" },
    leaf,
    fc.array(tie("json"), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom("a", "b", "c"), tie("json"), { maxKeys: 3 }),
  ),
}));
const stream = fc.oneof(
  fc.tuple(fc.constantFrom(...CATEGORIES), fc.option(fc.constantFrom("1", "2", "x-y", "😀", "\uFFFD", ""))).map(([c, id]) =>
    id === null ? c || "-" : `${c}-${id}`,
  ),
  fc.array(fc.constantFrom(...CHARS), { minLength: 1, maxLength: 5 }).map((cs) => cs.join("")),
);
const proposed = fc.record({
  stream,
  type: fc.constantFrom(...TYPES),
  metadata: fc.dictionary(fc.constantFrom(...KEYS), json, { maxKeys: 4 }),
});

let db: TestDatabase;
let store: EventStore;
let sql: Sql;
let events: RecordedEvent[];

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  sql = connect({ url: db.url, max: 2 });
  const batches = fc.sample(fc.array(proposed, { minLength: 20, maxLength: 40 }), { numRuns: 12, seed: DATA_SEED });
  for (const [i, batch] of batches.entries()) {
    const byStream = new Map<string, typeof batch>();
    for (const e of batch) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e]);
    await store.append(
      [...byStream].map(([name, es]) => ({ stream: name, expected: "any" as const, events: es.map((e) => event(e.type, {}, e.metadata)) })),
    );
    if (i < RAW_METADATA.length) {
      await sql`select * from eventstore.append(
        array[${`raw-${i}`}::text], array[-2::bigint], array[1], array[${randomUUID()}::uuid], array['Opened'],
        array['application/json'], array[''::bytea], array[${RAW_METADATA[i]}::text::jsonb])`;
    }
    // Batches share a stored_at time; the pause spreads the batches over a few milliseconds.
    await new Promise((r) => setTimeout(r, 3));
  }
  events = await collect(store.readAll({ direction: "forwards", filter: EMPTY_FILTER }));
});

afterAll(async () => {
  await sql?.end();
  await store?.close();
  await db?.drop();
});

/** Random filters over the stored events: most conditions off, so that results are not empty. */
function filters(): fc.Arbitrary<EventFilter> {
  const streams = [...new Set(events.map((e) => e.stream))];
  const prefixes = [...new Set(streams.flatMap((s) => [...s].map((_, i) => [...s].slice(0, i + 1).join(""))))];
  const ids = events.map((e) => e.id);
  const times = [...new Set(events.map((e) => e.storedAt.getTime()))];
  const entries = events.flatMap((e) => Object.entries(e.metadata) as [string, JsonValue][]);
  const seen = entries.map(([, v]) => v);
  // Stored values come back in jsonb's key order: reversed, they differ in order only.
  const value = fc.oneof(json, fc.constantFrom(...seen), fc.constantFrom(...seen).map(reverseKeys));
  const ordered = fc.oneof(string, number, fc.constantFrom(...seen.filter((v) => typeof v === "string" || typeof v === "number")));
  const time = fc.constantFrom(...times).chain((t) => fc.tuple(fc.constant(t), fc.integer({ min: -1, max: 1 })).map(([at, d]) => at + d));
  const rfc3339 = fc
    .tuple(time, fc.constantFrom(0, 90, -330, 15 * 60 + 59), fc.constantFrom("", "000", "999", "5", "0004", "9996"))
    .map(([at, offset, digits]) => formatTime(at, offset, digits));
  const text = (pool: readonly string[]) => fc.oneof(fc.constantFrom(...pool), string);
  const property = fc.oneof(
    fc.record({ property: fc.constant("type" as const), pool: fc.constant(TYPES) }),
    fc.record({ property: fc.constant("stream" as const), pool: fc.constant([...streams, ...prefixes]) }),
    fc.record({ property: fc.constant("id" as const), pool: fc.constant([...ids, ...ids.map((i) => i.toUpperCase()), randomUUID()]) }),
  );
  const operator = (ops: Operator[]) => fc.constantFrom(...ops);
  const ALL: Operator[] = ["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "regex"];
  const matcher: fc.Arbitrary<Matcher> = fc.oneof(
    fc.tuple(fc.constantFrom(...KEYS, "missing"), operator(ALL)).chain(([key, op]) =>
      operands(op, value, ordered).map((o) => ({ field: { metadataKey: key }, operator: op, ...o })),
    ),
    // A key with a value some event has under it, so that equality hits.
    fc.tuple(fc.constantFrom(...entries), operator(ALL), fc.boolean()).chain(([[key, v], op, reversed]) => {
      const own = fc.constant(reversed ? reverseKeys(v) : v);
      const comparable = typeof v === "number" || typeof v === "string" ? own : ordered;
      return operands(op, fc.oneof(own, value), comparable).map((o) => ({ field: { metadataKey: key }, operator: op, ...o }));
    }),
    fc.tuple(property, operator(ALL)).chain(([p, op]) =>
      operands(op, text(p.pool), text(p.pool)).map((o) => ({ field: { property: p.property }, operator: op, ...o })),
    ),
    operator(ALL.filter((o) => o !== "regex")).chain((op) =>
      operands(op, rfc3339, rfc3339).map((o) => ({ field: { property: "stored_at" as const }, operator: op, ...o })),
    ),
  );
  const sometimes = <T>(a: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: a });
  return fc
    .record({
      eventTypes: fc.oneof({ weight: 3, arbitrary: fc.constant<string[]>([]) }, fc.subarray([...TYPES, "Nope"], { minLength: 1 })),
      streamPrefix: sometimes(fc.constantFrom(...prefixes, "", "zz")),
      category: sometimes(fc.constantFrom(...CATEGORIES, "a-", "raw")),
      storedFrom: sometimes(time.map((t) => new Date(t))),
      storedBefore: sometimes(time.map((t) => new Date(t))),
      matchers: fc.array(matcher, { maxLength: 2 }),
      group: sometimes(fc.integer({ min: 1, max: 5 }).chain((size) => fc.record({ member: fc.nat(size - 1), size: fc.constant(size) }))),
    })
    .map((f) => {
      const filter: EventFilter = { eventTypes: f.eventTypes, matchers: f.matchers };
      if (f.streamPrefix !== undefined) filter.streamPrefix = f.streamPrefix;
      if (f.category !== undefined) filter.category = f.category;
      if (f.group !== undefined) filter.group = f.group;
      const [from, before] = [f.storedFrom, f.storedBefore].sort((x, y) => (x && y ? x.getTime() - y.getTime() : 0));
      if (from) filter.storedFrom = from;
      if (before) filter.storedBefore = before;
      return filter;
    });
}

function operands(op: Operator, value: fc.Arbitrary<JsonValue>, ordered: fc.Arbitrary<JsonValue>): fc.Arbitrary<Pick<Matcher, "value" | "values">> {
  if (op === "in" || op === "not_in") return fc.array(value, { minLength: 1, maxLength: 3 }).map((values) => ({ values }));
  if (op === "regex") return fc.constantFrom(...PATTERNS).map((v) => ({ value: v }));
  if (op === "eq" || op === "ne") return value.map((v) => ({ value: v }));
  return ordered.map((v) => ({ value: v }));
}

function reverseKeys(v: JsonValue): JsonValue {
  if (Array.isArray(v)) return v.map(reverseKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(Object.entries(v).reverse().map(([k, x]) => [k, reverseKeys(x)]));
}

/** An RFC 3339 text for `ms` at a UTC offset of `offset` minutes, with extra fraction digits. */
function formatTime(ms: number, offset: number, extraDigits: string): string {
  const local = new Date(ms + offset * 60_000).toISOString().slice(0, -1);
  const zone = offset === 0 ? "Z" : `${offset < 0 ? "-" : "+"}${pad(Math.abs(offset) / 60)}:${pad(Math.abs(offset) % 60)}`;
  return `${local}${extraDigits}${zone}`;
}

function pad(n: number): string {
  return String(Math.floor(n)).padStart(2, "0");
}

async function selectInSql(filter: EventFilter): Promise<bigint[]> {
  const rows = await sql<{ position: bigint }[]>`
    select e.position from eventstore.events e where ${filterSql(sql, filter)} order by e.position`;
  const byPosition = new Map(events.map((e) => [e.position, e]));
  return rows.map((r) => byPosition.get(r.position)!).filter((e) => matchesRegexMatchers(filter, e)).map((e) => e.position);
}

describe(`the SQL filter and the in-memory filter (data seed ${DATA_SEED})`, () => {
  it("stores a varied data set", () => {
    expect(events.length).toBeGreaterThan(240);
    expect(new Set(events.map((e) => e.storedAt.getTime())).size).toBeGreaterThan(5);
  });

  it("select the same events for every filter", async () => {
    let informative = 0;
    await fc.assert(
      fc.asyncProperty(filters(), async (filter) => {
        validateFilter(filter, DEFAULT_LIMITS);
        const inMemory = events.filter((e) => matchesFilter(filter, e)).map((e) => e.position);
        expect(await selectInSql(filter)).toEqual(inMemory);
        if (inMemory.length > 0 && inMemory.length < events.length) informative++;
      }),
      { numRuns: 1500 },
    );
    // Guards the generators: most filters must select some events but not all.
    expect(informative).toBeGreaterThan(1500 / 3);
  }, 180_000);

  it.each([
    ["eq", 1], ["ne", 1], ["gt", 1], ["gte", 2.5], ["lt", 100], ["lte", 0],
  ] as const)("compare the decimals other writers store like PostgreSQL does: n %s %s", async (operator, value) => {
    const filter: EventFilter = { eventTypes: [], matchers: [{ field: { metadataKey: "n" }, operator, value }], streamPrefix: "raw-" };
    const inMemory = events.filter((e) => matchesFilter(filter, e)).map((e) => e.position);
    expect(await selectInSql(filter)).toEqual(inMemory);
  });

  it("match jsonb objects and arrays whatever their key order and decimal form", async () => {
    const filter: EventFilter = {
      eventTypes: [],
      matchers: [{ field: { metadataKey: "obj" }, operator: "eq", value: { b: 2.5, a: [1, "x"] } }],
      streamPrefix: "raw-",
    };
    const inMemory = events.filter((e) => matchesFilter(filter, e)).map((e) => e.stream);
    expect(inMemory).toEqual(["raw-0", "raw-3"]);
    expect(await selectInSql(filter)).toEqual(events.filter((e) => matchesFilter(filter, e)).map((e) => e.position));
  });

  it("read the whole log in pages with regular expressions, a limit and both directions", async () => {
    const regexFilters = filters().map((f) => ({
      ...f,
      matchers: [...f.matchers, { field: { property: "type" as const }, operator: "regex" as const, value: "^[OC]" }],
    }));
    const positions = events.map((e) => e.position);
    await fc.assert(
      fc.asyncProperty(
        regexFilters,
        fc.constantFrom<"forwards" | "backwards">("forwards", "backwards"),
        fc.option(fc.constantFrom(...positions), { nil: undefined }),
        fc.option(fc.bigInt({ min: 1n, max: 30n }), { nil: undefined }),
        fc.integer({ min: 1, max: 7 }),
        async (filter, direction, fromPosition, limit, maxPageRows) => {
          validateFilter(filter, DEFAULT_LIMITS);
          const pages = readAll(sql, { direction, filter, fromPosition, limit }, { pageBytes: 1 << 20, maxPageRows });
          const got = (await collect(pages)).map((e) => e.position);
          let expected = events.filter((e) => matchesFilter(filter, e));
          if (direction === "backwards") expected.reverse();
          if (fromPosition !== undefined) {
            expected = expected.filter((e) => (direction === "forwards" ? e.position >= fromPosition : e.position <= fromPosition));
          }
          expect(got).toEqual(expected.slice(0, limit === undefined ? undefined : Number(limit)).map((e) => e.position));
        },
      ),
      { numRuns: 200 },
    );
  }, 180_000);

  it("hash streams to consumer group members the same way", async () => {
    const streams = [...new Set(events.map((e) => e.stream))];
    for (const size of [1, 2, 3, 7, 2 ** 31, 2 ** 32]) {
      const rows = await sql<{ stream: string; member: string }[]>`
        select s as stream, (('x' || substr(md5(s), 1, 8))::bit(32)::bigint % ${size}::bigint)::text as member
          from unnest(${sql.array(streams, 25)}::text[]) s`;
      expect(rows.map((r) => [r.stream, Number(r.member)])).toEqual(streams.map((s) => [s, consumerGroupMember(s, size)]));
    }
  });
});

describe("RFC 3339 times", () => {
  const digits = (n: number, max: number) => fc.integer({ min: 0, max }).map((v) => String(v).padStart(n, "0"));
  const text = fc
    .tuple(
      digits(4, 9999),
      digits(2, 13),
      digits(2, 32),
      fc.constantFrom("T", "t", " "),
      digits(2, 25),
      digits(2, 60),
      digits(2, 61),
      fc.option(fc.stringMatching(/^[0-9]{1,10}$/), { nil: undefined }),
      fc.oneof(fc.constantFrom("Z", "z"), fc.tuple(fc.constantFrom("+", "-"), digits(2, 16), digits(2, 60)).map(([s, h, m]) => `${s}${h}:${m}`)),
    )
    .map(([y, mo, d, t, h, mi, s, f, z]) => `${y}-${mo}-${d}${t}${h}:${mi}:${s}${f === undefined ? "" : `.${f}`}${z}`);

  it("are read as PostgreSQL's timestamptz reads them, or refused", async () => {
    const db = await createTestDatabase();
    const sql = connect({ url: db.url, max: 1 });
    try {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(text, async (t) => {
          const ours = filterTimeMicros(t);
          let theirs: bigint | undefined;
          try {
            const [row] = await sql<{ micros: string }[]>`
              select (extract(epoch from ${t}::text::timestamptz) * 1000000)::bigint::text as micros`;
            theirs = BigInt(row.micros);
          } catch {
            theirs = undefined;
          }
          // We may refuse what PostgreSQL accepts (24:00:00), never the other way round.
          if (ours !== undefined) {
            accepted++;
            expect(ours).toBe(theirs);
          }
        }),
        { numRuns: 600 },
      );
      expect(accepted).toBeGreaterThan(100);
    } finally {
      await sql.end();
      await db.drop();
    }
  });
});

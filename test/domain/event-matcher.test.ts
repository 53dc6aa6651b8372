import { randomUUID } from "node:crypto";
import {
  DEFAULT_LIMITS,
  EventStoreError,
  filterTimeMicros,
  isEmptyFilter,
  validateFilter,
  type EventFilter,
  type JsonValue,
  type Matcher,
  type RecordedEvent,
} from "../../src/domain";
import { consumerGroupMember, streamHash } from "../../src/domain/consumer-group";
import { compareCodePoints, matchesFilter } from "../../src/domain/event-matcher";

// The equivalence with PostgreSQL is proven in test/store/filter-equivalence.test.ts; these pin
// the cases that are easy to get wrong in JavaScript.

const STORED_AT = new Date("2024-05-01T12:00:00.001Z");

function recorded(overrides: Partial<RecordedEvent> = {}): RecordedEvent {
  return {
    id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    type: "Opened",
    contentType: "application/json",
    data: new Uint8Array(),
    metadata: {},
    stream: "account-1",
    revision: 0n,
    position: 1n,
    storedAt: STORED_AT,
    ...overrides,
  };
}

function matcher(field: Matcher["field"], operator: Matcher["operator"], operand: JsonValue | JsonValue[]): EventFilter {
  const m: Matcher = operator === "in" || operator === "not_in" ? { field, operator, values: operand as JsonValue[] } : { field, operator, value: operand };
  return validateFilter({ eventTypes: [], matchers: [m] }, DEFAULT_LIMITS);
}

const meta = (metadataKey: string) => ({ metadataKey });

function refusal(filter: EventFilter): EventStoreError | undefined {
  try {
    validateFilter(filter, DEFAULT_LIMITS);
  } catch (e) {
    return e as EventStoreError;
  }
  return undefined;
}

describe("metadata matchers compare like jsonb", () => {
  it("numbers are equal by value, as 1 and 1.0 are in jsonb", () => {
    const event = recorded({ metadata: JSON.parse(`{"n": 1.0, "m": 1e2}`) });
    expect(matchesFilter(matcher(meta("n"), "eq", 1), event)).toBe(true);
    expect(matchesFilter(matcher(meta("m"), "in", [5, 100]), event)).toBe(true);
    expect(matchesFilter(matcher(meta("n"), "ne", 1), event)).toBe(false);
  });

  it("a string never equals a number", () => {
    const event = recorded({ metadata: { n: "1" } });
    expect(matchesFilter(matcher(meta("n"), "eq", 1), event)).toBe(false);
    expect(matchesFilter(matcher(meta("n"), "ne", 1), event)).toBe(true);
    expect(matchesFilter(matcher(meta("n"), "gt", 0), event)).toBe(false);
  });

  it("objects are equal whatever their key order; arrays only in the same order", () => {
    const event = recorded({ metadata: { o: { a: 1, b: { c: [1, 2], d: null } } } });
    expect(matchesFilter(matcher(meta("o"), "eq", { b: { d: null, c: [1, 2] }, a: 1 }), event)).toBe(true);
    expect(matchesFilter(matcher(meta("o"), "eq", { b: { d: null, c: [2, 1] }, a: 1 }), event)).toBe(false);
    expect(matchesFilter(matcher(meta("o"), "eq", { a: 1 }), event)).toBe(false);
    expect(matchesFilter(matcher(meta("o"), "eq", { a: 1, b: { c: [1, 2], d: null }, e: null }), event)).toBe(false);
  });

  it("a scalar is not the array that holds it", () => {
    expect(matchesFilter(matcher(meta("t"), "eq", ["x"]), recorded({ metadata: { t: "x" } }))).toBe(false);
    expect(matchesFilter(matcher(meta("t"), "eq", "x"), recorded({ metadata: { t: ["x"] } }))).toBe(false);
  });

  it("an absent key matches no operator, not even ne or not_in", () => {
    const event = recorded({ metadata: { other: 1 } });
    const cases: [Matcher["operator"], JsonValue | JsonValue[]][] = [
      ["eq", 1], ["ne", 1], ["gt", 0], ["gte", ""], ["lt", 9], ["lte", "z"], ["in", [1, null]], ["not_in", [1]], ["regex", ""],
    ];
    for (const [operator, operand] of cases) expect(matchesFilter(matcher(meta("k"), operator, operand), event)).toBe(false);
  });

  it("a key inherited from Object.prototype is absent", () => {
    const event = recorded({ metadata: {} });
    expect(matchesFilter(matcher(meta("constructor"), "ne", 1), event)).toBe(false);
    expect(matchesFilter(matcher(meta("__proto__"), "not_in", [1]), event)).toBe(false);
  });

  it("a null value is present: it equals null and differs from anything else", () => {
    const event = recorded({ metadata: { k: null } });
    expect(matchesFilter(matcher(meta("k"), "eq", null), event)).toBe(true);
    expect(matchesFilter(matcher(meta("k"), "ne", 1), event)).toBe(true);
    expect(matchesFilter(matcher(meta("k"), "in", [null]), event)).toBe(true);
    expect(matchesFilter(matcher(meta("k"), "not_in", [1, "null"]), event)).toBe(true);
    expect(matchesFilter(matcher(meta("k"), "gte", 0), event)).toBe(false);
  });

  it("ordering compares numbers with numbers and strings with strings", () => {
    const event = recorded({ metadata: { n: 10.5, s: "b" } });
    expect(matchesFilter(matcher(meta("n"), "gt", 10), event)).toBe(true);
    expect(matchesFilter(matcher(meta("n"), "lte", 10.5), event)).toBe(true);
    expect(matchesFilter(matcher(meta("n"), "lt", "z"), event)).toBe(false);
    expect(matchesFilter(matcher(meta("s"), "gt", "a"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("s"), "gt", 1), event)).toBe(false);
  });
});

describe("strings order by code point, as collate \"C\" does", () => {
  it("puts astral characters after U+E000..U+FFFF, unlike JavaScript's <", () => {
    expect("😀" < "\uE000").toBe(true); // UTF-16 code units: 0xD83D < 0xE000
    expect(compareCodePoints("😀", "\uE000")).toBeGreaterThan(0);
    expect(compareCodePoints("\uFFFF", "𝔸")).toBeLessThan(0);
    expect(compareCodePoints("a😀", "a\uFFFD")).toBeGreaterThan(0);
    expect(compareCodePoints("😀", "😁")).toBeLessThan(0);
    expect(compareCodePoints("ab", "a")).toBeGreaterThan(0);
    expect(compareCodePoints("é", "é")).toBe(0);
  });

  it("applies to metadata strings and to properties", () => {
    expect(matchesFilter(matcher(meta("s"), "gt", "\uE000"), recorded({ metadata: { s: "😀" } }))).toBe(true);
    expect(matchesFilter(matcher({ property: "stream" }, "gt", "\uFFFD"), recorded({ stream: "😀-1" }))).toBe(true);
    expect(matchesFilter(matcher({ property: "type" }, "lt", "😀"), recorded({ type: "\uE000" }))).toBe(true);
  });

  it("compares ids as lower-case text", () => {
    const event = recorded();
    expect(matchesFilter(matcher({ property: "id" }, "eq", event.id), event)).toBe(true);
    expect(matchesFilter(matcher({ property: "id" }, "eq", event.id.toUpperCase()), event)).toBe(false);
  });
});

describe("regular expressions", () => {
  it("are RE2: . is one code point, \\x{...}, \\p{...} and inline flags work", () => {
    const event = recorded({ metadata: { e: "😀", u: "Éa" } });
    expect(matchesFilter(matcher(meta("e"), "regex", "^.$"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("e"), "regex", "^\\x{1F600}$"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("u"), "regex", "^\\p{Lu}\\p{Ll}$"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("u"), "regex", "^(?i)éA$"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("u"), "regex", "^éA$"), event)).toBe(false);
  });

  it("match anywhere in the string, and only strings", () => {
    const event = recorded({ type: "AccountOpened", metadata: { n: 12, s: "x12y" } });
    expect(matchesFilter(matcher({ property: "type" }, "regex", "Open"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("s"), "regex", "\\d+"), event)).toBe(true);
    expect(matchesFilter(matcher(meta("n"), "regex", "\\d+"), event)).toBe(false);
  });

  it("give the same answer on every event (no state kept between tests)", () => {
    const filter = matcher(meta("s"), "regex", "a");
    const event = recorded({ metadata: { s: "aaa" } });
    for (let i = 0; i < 3; i++) expect(matchesFilter(filter, event)).toBe(true);
  });

  it("are refused, with RE2's message, when RE2 cannot parse them", () => {
    // ECMAScript's \u escape is not RE2 syntax (\x{...} is); a{ is a literal in RE2.
    const e = refusal({ eventTypes: [], matchers: [{ field: meta("k"), operator: "regex", value: "\\u0041" }] });
    expect(e?.kind).toBe("INVALID_ARGUMENT");
    expect(e?.facts.field).toBe("filter.matchers[0].value");
    expect(e?.message).toContain("invalid escape sequence");
    expect(matchesFilter(matcher(meta("k"), "regex", "a{"), recorded({ metadata: { k: "a{" } }))).toBe(true);
  });
});

describe("stored_at", () => {
  it("compares instants, whatever the offset", () => {
    const event = recorded();
    expect(matchesFilter(matcher({ property: "stored_at" }, "eq", "2024-05-01T14:30:00.001+02:30"), event)).toBe(true);
    expect(matchesFilter(matcher({ property: "stored_at" }, "gt", "2024-05-01T12:00:00Z"), event)).toBe(true);
    expect(matchesFilter(matcher({ property: "stored_at" }, "in", ["2024-05-01T12:00:00.001z"]), event)).toBe(true);
    expect(matchesFilter(matcher({ property: "stored_at" }, "not_in", ["2024-05-01T12:00:00.001Z"]), event)).toBe(false);
  });

  it("rounds fractions to microseconds half to even, as PostgreSQL does", () => {
    const event = recorded();
    expect(matchesFilter(matcher({ property: "stored_at" }, "eq", "2024-05-01T12:00:00.0009995Z"), event)).toBe(true);
    // PostgreSQL reads the fraction as a double first: 0.0010005 * 1e6 is 1000.5000000000001.
    expect(matchesFilter(matcher({ property: "stored_at" }, "eq", "2024-05-01T12:00:00.0010005Z"), event)).toBe(false);
    expect(matchesFilter(matcher({ property: "stored_at" }, "lt", "2024-05-01T12:00:00.0010005Z"), event)).toBe(true);
    expect(matchesFilter(matcher({ property: "stored_at" }, "gte", "2024-05-01T12:00:00.0010006Z"), event)).toBe(false);
    expect(filterTimeMicros("1970-01-01T00:00:00.0000025Z")).toBe(2n);
    expect(filterTimeMicros("1970-01-01T00:00:00.0000035Z")).toBe(4n);
  });

  it("filters by stored-at range: from inclusive, before exclusive", () => {
    const event = recorded();
    const range = (storedFrom?: Date, storedBefore?: Date) => matchesFilter({ eventTypes: [], matchers: [], storedFrom, storedBefore }, event);
    expect(range(STORED_AT)).toBe(true);
    expect(range(undefined, STORED_AT)).toBe(false);
    expect(range(undefined, new Date(STORED_AT.getTime() + 1))).toBe(true);
  });

  it.each([
    "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "0000-01-01T00:00:00Z", "2024-01-01T24:00:00Z",
    "2024-01-01T00:00:00", "2024-01-01", "2024-01-01T00:00:00+16:00", "1", "yesterday",
  ])("refuses %s", (text) => {
    expect(filterTimeMicros(text)).toBeUndefined();
    const e = refusal({ eventTypes: [], matchers: [{ field: { property: "stored_at" }, operator: "lt", value: text }] });
    expect(e?.facts.field).toBe("filter.matchers[0].value");
  });

  it("reads the leap second 60 as the next minute's first, as PostgreSQL does", () => {
    expect(filterTimeMicros("2016-12-31T23:59:60Z")).toBe(filterTimeMicros("2017-01-01T00:00:00Z"));
  });
});

describe("streams, types and categories", () => {
  it("selects by event type, prefix and category", () => {
    const event = recorded({ stream: "account-1", type: "Opened" });
    const f = (o: Partial<EventFilter>) => matchesFilter({ eventTypes: [], matchers: [], ...o }, event);
    expect(f({ eventTypes: ["Closed", "Opened"] })).toBe(true);
    expect(f({ eventTypes: ["opened"] })).toBe(false);
    expect(f({ streamPrefix: "acc" })).toBe(true);
    expect(f({ streamPrefix: "" })).toBe(true);
    expect(f({ category: "account" })).toBe(true);
    expect(f({ category: "acc" })).toBe(false);
    expect(matchesFilter({ eventTypes: [], matchers: [], category: "account" }, recorded({ stream: "account" }))).toBe(true);
    expect(matchesFilter({ eventTypes: [], matchers: [], category: "account" }, recorded({ stream: "accounts-1" }))).toBe(false);
  });
});

describe("consumer groups", () => {
  it("hash like PostgreSQL's md5: the first 8 hex digits, unsigned", () => {
    // Values computed by PostgreSQL: ('x' || substr(md5(s), 1, 8))::bit(32)::bigint.
    expect(streamHash("account-1")).toBe(0xc667b5d4);
    expect(consumerGroupMember("account-1", 4)).toBe(0);
    expect(consumerGroupMember("account-1", 7)).toBe(3);
    expect(consumerGroupMember("account-2", 4)).toBe(3);
    expect(streamHash("😀-é")).toBe(173754723);
    expect(consumerGroupMember("😀-é", 4)).toBe(3);
  });

  it("give every stream to exactly one member, spread about evenly", () => {
    const size = 4;
    const counts = new Array<number>(size).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const event = recorded({ stream: `account-${randomUUID()}` });
      const members = [0, 1, 2, 3].filter((member) => matchesFilter({ eventTypes: [], matchers: [], group: { member, size } }, event));
      expect(members).toHaveLength(1);
      counts[members[0]]++;
    }
    for (const c of counts) expect(Math.abs(c - 2500)).toBeLessThan(250);
  });

  it("a group of one takes every stream", () => {
    expect(matchesFilter({ eventTypes: [], matchers: [], group: { member: 0, size: 1 } }, recorded({ stream: "x" }))).toBe(true);
  });

  it.each([
    [{ member: 0, size: 0 }, "consumer_group.size"],
    [{ member: 0, size: 1.5 }, "consumer_group.size"],
    [{ member: 4, size: 4 }, "consumer_group.member"],
    [{ member: -1, size: 4 }, "consumer_group.member"],
    [{ member: 0.5, size: 4 }, "consumer_group.member"],
  ])("refuses %j naming %s", (group, field) => {
    const e = refusal({ eventTypes: [], matchers: [], group });
    expect(e?.kind).toBe("INVALID_ARGUMENT");
    expect(e?.facts.field).toBe(field);
  });

  it("make a filter non-empty", () => {
    expect(isEmptyFilter({ eventTypes: [], matchers: [], group: { member: 0, size: 2 } })).toBe(false);
  });
});

describe("values PostgreSQL cannot hold are refused", () => {
  it.each([
    [{ eventTypes: ["a\u0000"], matchers: [] }, "filter.event_types[0]"],
    [{ eventTypes: [], matchers: [], streamPrefix: "\uD800" }, "filter.stream_prefix"],
    [{ eventTypes: [], matchers: [{ field: meta("k\u0000"), operator: "eq", value: 1 }] }, "filter.matchers[0].metadata_key"],
    [{ eventTypes: [], matchers: [{ field: meta("k"), operator: "eq", value: { a: ["\uDC00"] } }] }, "filter.matchers[0].value"],
    [{ eventTypes: [], matchers: [{ field: meta("k"), operator: "in", values: [1, Number.NaN] }] }, "filter.matchers[0].values"],
    [{ eventTypes: [], matchers: [{ field: meta("k"), operator: "gt", value: Infinity }] }, "filter.matchers[0].value"],
    [{ eventTypes: [], matchers: [], storedFrom: new Date(Number.NaN) }, "filter.stored_from"],
  ] as [EventFilter, string][])("%#: names %s", (filter, field) => {
    expect(refusal(filter)?.facts.field).toBe(field);
  });

  it("accepts astral characters, which are whole surrogate pairs", () => {
    expect(refusal({ eventTypes: ["😀"], matchers: [{ field: meta("😀"), operator: "eq", value: "𝔸" }] })).toBeUndefined();
  });
});

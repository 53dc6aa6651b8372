import { streamHash } from "./consumer-group";
import type { RecordedEvent } from "./event";
import { filterTimeMicros, matcherRegex, type EventFilter, type JsonValue, type Matcher } from "./filter";

/**
 * Whether an event passes a (validated) filter: the in-memory twin of the SQL in
 * store/postgres/filter-sql.ts, with the same results on every event, which
 * test/store/filter-equivalence.test.ts checks against PostgreSQL. Regular expressions are the
 * exception: they run here only (the SQL leaves them out), in RE2 syntax and linear time
 * (linear-regex.ts), compiled once per matcher when the filter is validated.
 *
 * One limit of that sameness: jsonb keeps numbers as exact decimals, and an event's metadata
 * reaches JavaScript as doubles. Numbers that a double cannot tell apart from their neighbours
 * (beyond 2^53, or with more than about 15 significant digits, such as
 * 0.10000000000000000001) may compare differently here than in PostgreSQL's numeric.
 */
export function matchesFilter(filter: EventFilter, event: RecordedEvent): boolean {
  if (filter.eventTypes.length > 0 && !filter.eventTypes.includes(event.type)) return false;
  if (filter.streamPrefix !== undefined && !event.stream.startsWith(filter.streamPrefix)) return false;
  if (filter.category !== undefined && event.stream !== filter.category && !event.stream.startsWith(`${filter.category}-`)) {
    return false;
  }
  if (filter.storedFrom && event.storedAt.getTime() < filter.storedFrom.getTime()) return false;
  if (filter.storedBefore && event.storedAt.getTime() >= filter.storedBefore.getTime()) return false;
  if (filter.group && streamHash(event.stream) % filter.group.size !== filter.group.member) return false;
  return filter.matchers.every((m) => matches(m, event));
}

/** Whether a filter has conditions that only the in-memory filter checks. */
export function hasRegexMatchers(filter: EventFilter): boolean {
  return filter.matchers.some((m) => m.operator === "regex");
}

/** Whether an event passes a filter's regular expressions (the rest is left to the SQL). */
export function matchesRegexMatchers(filter: EventFilter, event: RecordedEvent): boolean {
  return filter.matchers.every((m) => m.operator !== "regex" || matches(m, event));
}

/**
 * The code point order of two strings, which is PostgreSQL's `collate "C"` order (UTF-8 byte
 * order). JavaScript's `<` compares UTF-16 code units instead, which puts astral characters
 * (surrogate pairs) before U+E000..U+FFFF; so at the first difference, units are moved to
 * where their code points sort.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}

function matches(m: Matcher, event: RecordedEvent): boolean {
  if ("metadataKey" in m.field) {
    const metadata = event.metadata;
    // jsonb `->` finds a key of an object only; an absent key never matches.
    if (metadata === null || typeof metadata !== "object" || Array.isArray(metadata)) return false;
    if (!Object.hasOwn(metadata, m.field.metadataKey)) return false;
    return matchesJson(m, metadata[m.field.metadataKey] as JsonValue);
  }
  switch (m.field.property) {
    case "type":
      return matchesText(m, event.type);
    case "stream":
      return matchesText(m, event.stream);
    case "id":
      return matchesText(m, event.id);
    case "stored_at":
      return matchesTime(m, BigInt(event.storedAt.getTime()) * 1000n);
  }
}

function matchesJson(m: Matcher, field: JsonValue): boolean {
  switch (m.operator) {
    case "eq":
      return jsonbEqual(field, m.value!);
    case "ne":
      return !jsonbEqual(field, m.value!);
    case "in":
      return m.values!.some((v) => jsonbEqual(field, v));
    case "not_in":
      return !m.values!.some((v) => jsonbEqual(field, v));
    case "regex":
      return typeof field === "string" && matcherRegex(m).test(field);
    default:
      // Ordering compares like with like: numbers as numeric, strings by code point.
      if (typeof m.value === "number") return typeof field === "number" && ordered(m.operator, compare(field, m.value));
      return typeof field === "string" && ordered(m.operator, compareCodePoints(field, m.value as string));
  }
}

function matchesText(m: Matcher, field: string): boolean {
  switch (m.operator) {
    case "eq":
      return field === m.value;
    case "ne":
      return field !== m.value;
    case "in":
      return m.values!.includes(field);
    case "not_in":
      return !m.values!.includes(field);
    case "regex":
      return matcherRegex(m).test(field);
    default:
      return ordered(m.operator, compareCodePoints(field, m.value as string));
  }
}

function matchesTime(m: Matcher, field: bigint): boolean {
  const operands = times(m);
  switch (m.operator) {
    case "eq":
      return field === operands[0];
    case "ne":
      return field !== operands[0];
    case "in":
      return operands.includes(field);
    case "not_in":
      return !operands.includes(field);
    default:
      return ordered(m.operator, compare(field, operands[0]));
  }
}

function compare<T extends number | bigint>(a: T, b: T): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function ordered(operator: Matcher["operator"], comparison: number): boolean {
  switch (operator) {
    case "gt":
      return comparison > 0;
    case "gte":
      return comparison >= 0;
    case "lt":
      return comparison < 0;
    default:
      return comparison <= 0;
  }
}

/** jsonb equality: numbers by value (1 = 1.0), objects whatever their key order, arrays in order. */
export function jsonbEqual(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonbEqual(x, b[i]));
  }
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonbEqual(a[k], b[k]));
}

// Compiled operands, per matcher: filters are checked against every event of a live batch.
const timeOperands = new WeakMap<Matcher, { texts: JsonValue[]; times: bigint[] }>();

function times(m: Matcher): bigint[] {
  const texts = m.operator === "in" || m.operator === "not_in" ? m.values! : [m.value!];
  const cached = timeOperands.get(m);
  if (cached && cached.texts.length === texts.length && cached.texts.every((t, i) => t === texts[i])) return cached.times;
  const operands = texts.map((v) => filterTimeMicros(v as string)!);
  timeOperands.set(m, { texts: [...texts], times: operands });
  return operands;
}

import type { ConsumerGroup } from "./consumer-group";
import { invalidArgument, limitExceeded } from "./errors";
import { DEFAULT_LIMITS, type Limits } from "./limits";
import { checkRegexSize, compileLinearRegex, type LinearRegex } from "./linear-regex";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export type EventProperty = "type" | "id" | "stored_at" | "stream";

/** What a matcher looks at: a top-level metadata key, or one of the event's own properties. */
export type MatcherField = { metadataKey: string } | { property: EventProperty };

export type Operator = "eq" | "ne" | "gt" | "gte" | "lt" | "lte" | "in" | "not_in" | "regex";

export interface Matcher {
  field: MatcherField;
  operator: Operator;
  /** The operand of every operator but in / not_in. */
  value?: JsonValue;
  /** The operands of in / not_in. */
  values?: JsonValue[];
}

/** Selects events; every condition that is set must hold. */
export interface EventFilter {
  eventTypes: string[];
  streamPrefix?: string;
  category?: string;
  storedFrom?: Date;
  storedBefore?: Date;
  matchers: Matcher[];
  /** Only the streams that hash to this member of a consumer group (see consumer-group.ts). */
  group?: ConsumerGroup;
}

export const EMPTY_FILTER: EventFilter = { eventTypes: [], matchers: [] };

export function isEmptyFilter(f: EventFilter): boolean {
  return (
    f.eventTypes.length === 0 &&
    f.streamPrefix === undefined &&
    f.category === undefined &&
    f.storedFrom === undefined &&
    f.storedBefore === undefined &&
    f.matchers.length === 0 &&
    f.group === undefined
  );
}

const ORDERING: ReadonlySet<Operator> = new Set(["gt", "gte", "lt", "lte"]);

/**
 * Checks a filter against the rules that make its SQL (filter-sql.ts) and in-memory
 * (event-matcher.ts) forms agree, and that keep the SQL from failing on a value PostgreSQL
 * cannot hold; throws INVALID_ARGUMENT naming the offending field, or LIMIT_EXCEEDED for a
 * filter over the terms or bytes limits (checked first, before any other work) or with a
 * regular expression too large. Compiles its regular expressions, once: see matcherRegex.
 */
export function validateFilter(filter: EventFilter, limits: Limits, field = "filter"): EventFilter {
  const terms = filter.eventTypes.length + filter.matchers.reduce((n, m) => n + 1 + (m.values?.length ?? 0), 0);
  if (terms > limits.maxFilterTerms) {
    throw limitExceeded(field, String(limits.maxFilterTerms), String(terms), `a filter has at most ${limits.maxFilterTerms} terms (got ${terms})`);
  }
  const bytes = filterBytes(filter, limits.maxFilterBytes);
  if (bytes > limits.maxFilterBytes) {
    throw limitExceeded(field, String(limits.maxFilterBytes), String(bytes),
      `a filter holds at most ${limits.maxFilterBytes} bytes of types, prefixes, keys and values (got ${bytes} or more)`);
  }
  checkRegexInstructions(filter, limits, field);
  filter.eventTypes.forEach((t, i) => {
    if (t.length === 0) throw invalidArgument(`${field}.event_types[${i}]`, "an event type must not be empty");
    requireText(t, `${field}.event_types[${i}]`);
  });
  if (filter.streamPrefix !== undefined) requireText(filter.streamPrefix, `${field}.stream_prefix`);
  if (filter.category !== undefined) requireText(filter.category, `${field}.category`);
  if (filter.storedFrom) requireTime(filter.storedFrom, `${field}.stored_from`);
  if (filter.storedBefore) requireTime(filter.storedBefore, `${field}.stored_before`);
  if (filter.storedFrom && filter.storedBefore && filter.storedFrom > filter.storedBefore) {
    throw invalidArgument(`${field}.stored_from`, "stored_from is after stored_before");
  }
  filter.matchers.forEach((m, i) => validateMatcher(m, `${field}.matchers[${i}]`, limits));
  if (filter.group) validateGroup(filter.group);
  return filter;
}

/**
 * An RFC 3339 time as microseconds since the Unix epoch, the way PostgreSQL's `timestamptz`
 * reads it (fractions rounded half-even to microseconds, second 60 rolling over); undefined if
 * the text is not RFC 3339 or lies outside what PostgreSQL accepts (years 1-9999, offsets
 * within 15:59).
 */
export function filterTimeMicros(text: string): bigint | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const [fraction, utc, sign, offsetHours, offsetMinutes] = m.slice(7);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  let offset = 0;
  if (utc === undefined) {
    if (Number(offsetHours) > 15 || Number(offsetMinutes) > 59) return undefined;
    offset = (sign === "-" ? -1 : 1) * (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60);
  }
  const seconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset;
  // PostgreSQL parses the fraction with strtod and rounds with rint; the same doubles here.
  const micros = fraction === undefined ? 0 : roundHalfEven(Number(`0.${fraction}`) * 1e6);
  return BigInt(seconds) * 1_000_000n + BigInt(micros);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Days from 1970-01-01 in the proleptic Gregorian calendar (Howard Hinnant's algorithm). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The UTF-8 bytes of what a filter names and compares with: its event types, prefix, category,
 * metadata keys and operands (JSON-encoded, as the SQL sends them). Stops counting once past
 * `stopAbove`, so that an oversized filter costs no more than the limit to refuse.
 */
export function filterBytes(filter: EventFilter, stopAbove = Infinity): number {
  let bytes = 0;
  const texts = [...filter.eventTypes, filter.streamPrefix ?? "", filter.category ?? ""];
  for (const t of texts) {
    bytes += Buffer.byteLength(t);
    if (bytes > stopAbove) return bytes;
  }
  for (const m of filter.matchers) {
    if ("metadataKey" in m.field) bytes += Buffer.byteLength(m.field.metadataKey);
    const operands = m.operator === "in" || m.operator === "not_in" ? m.values ?? [] : [m.value];
    for (const v of operands) {
      bytes += Buffer.byteLength(JSON.stringify(v) ?? "");
      if (bytes > stopAbove) return bytes;
    }
  }
  return bytes;
}

/**
 * Matching an event costs each of a filter's regular expressions up to its program's size per
 * character of the value it reads, so the bound is on their sum, checked before any compiling.
 */
function checkRegexInstructions(filter: EventFilter, limits: Limits, field: string): void {
  let total = 0;
  filter.matchers.forEach((m, i) => {
    if (m.operator !== "regex" || typeof m.value !== "string") return;
    total += checkRegexSize(m.value, limits, `${field}.matchers[${i}].value`);
    if (total > limits.maxRegexInstructions) {
      throw limitExceeded(`${field}.matchers[${i}].value`, String(limits.maxRegexInstructions), String(total),
        `a filter's regular expressions compile to at most ${limits.maxRegexInstructions} RE2 instructions together ` +
          `(these to up to ${total}: counted repetition such as x{100} repeats x)`);
    }
  });
}

/**
 * The compiled regular expression of a regex matcher. validateFilter compiles it once per
 * matcher, so that filtering a live batch or a page compiles nothing per event; a matcher that
 * was never validated (or whose pattern changed since) is compiled here, with the default limits.
 */
export function matcherRegex(m: Matcher): LinearRegex {
  const pattern = m.value as string;
  const cached = compiledRegexes.get(m);
  if (cached?.pattern === pattern) return cached.regex;
  return compileRegex(m, pattern, DEFAULT_LIMITS, "filter.matchers.value");
}

const compiledRegexes = new WeakMap<Matcher, { pattern: string; regex: LinearRegex }>();

function compileRegex(m: Matcher, pattern: string, limits: Limits, field: string): LinearRegex {
  const cached = compiledRegexes.get(m);
  // Compiled before (the API and the store both validate); the sizes were checked just now.
  if (cached?.pattern === pattern) return cached.regex;
  const regex = compileLinearRegex(pattern, limits, field);
  compiledRegexes.set(m, { pattern, regex });
  return regex;
}

function validateMatcher(m: Matcher, field: string, limits: Limits): void {
  if ("metadataKey" in m.field) {
    if (m.field.metadataKey.length === 0) throw invalidArgument(`${field}.metadata_key`, "a metadata key must not be empty");
    requireText(m.field.metadataKey, `${field}.metadata_key`);
  }
  const property = "property" in m.field ? m.field.property : undefined;
  const operands = m.operator === "in" || m.operator === "not_in" ? m.values ?? [] : [m.value];
  if (m.operator === "in" || m.operator === "not_in") {
    if (operands.length === 0) throw invalidArgument(`${field}.values`, `${m.operator} needs at least one value`);
  } else if (m.value === undefined) {
    throw invalidArgument(`${field}.value`, `${m.operator} needs a value`);
  }
  const operandField = m.operator === "in" || m.operator === "not_in" ? `${field}.values` : `${field}.value`;
  for (const v of operands) {
    if (property !== undefined && typeof v !== "string") {
      throw invalidArgument(operandField, `the ${property} property is compared with strings`);
    }
    if (property === "stored_at" && filterTimeMicros(v as string) === undefined) {
      throw invalidArgument(operandField, "stored_at is compared with RFC 3339 times (such as 2024-05-01T12:00:00Z)");
    }
    if (ORDERING.has(m.operator) && typeof v !== "string" && typeof v !== "number") {
      throw invalidArgument(operandField, `${m.operator} compares numbers or strings`);
    }
    if (m.operator === "regex") {
      if (typeof v !== "string") throw invalidArgument(operandField, "regex takes a string pattern");
      if (property === "stored_at") throw invalidArgument(operandField, "regex does not apply to stored_at");
      // Regular expressions run in memory only (event-matcher.ts), so that catch-up reads and
      // live delivery agree: RE2 syntax, in linear time (linear-regex.ts).
      compileRegex(m, v, limits, operandField);
    } else {
      requireJson(v as JsonValue, operandField);
    }
  }
}

function validateGroup(group: ConsumerGroup): void {
  if (!Number.isSafeInteger(group.size) || group.size < 1) {
    throw invalidArgument("consumer_group.size", `a consumer group has 1 or more members (got ${group.size})`);
  }
  if (!Number.isSafeInteger(group.member) || group.member < 0 || group.member >= group.size) {
    throw invalidArgument("consumer_group.member", `member must be in 0..${group.size - 1} (got ${group.member})`);
  }
}

// In unicode mode a surrogate class matches only unpaired surrogates.
const NOT_IN_POSTGRES_TEXT = /[\u0000\uD800-\uDFFF]/u;

/** PostgreSQL text holds neither NUL nor unpaired surrogates: such a value could never match. */
function requireText(s: string, field: string): void {
  if (NOT_IN_POSTGRES_TEXT.test(s)) throw invalidArgument(field, "must be valid Unicode without NUL characters");
}

function requireJson(v: JsonValue, field: string): void {
  if (typeof v === "string") requireText(v, field);
  else if (typeof v === "number" && !Number.isFinite(v)) throw invalidArgument(field, "numbers must be finite");
  else if (Array.isArray(v)) v.forEach((x) => requireJson(x, field));
  else if (v !== null && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) {
      requireText(k, field);
      requireJson(x, field);
    }
  }
}

function requireTime(d: Date, field: string): void {
  const year = d.getUTCFullYear();
  if (Number.isNaN(d.getTime()) || year < 1 || year > 9999) throw invalidArgument(field, "must be a time in years 1 to 9999");
}

import { invalidArgument } from "./errors";
import type { Limits } from "./limits";

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
}

export const EMPTY_FILTER: EventFilter = { eventTypes: [], matchers: [] };

export function isEmptyFilter(f: EventFilter): boolean {
  return (
    f.eventTypes.length === 0 &&
    f.streamPrefix === undefined &&
    f.category === undefined &&
    f.storedFrom === undefined &&
    f.storedBefore === undefined &&
    f.matchers.length === 0
  );
}

const ORDERING: ReadonlySet<Operator> = new Set(["gt", "gte", "lt", "lte"]);

/**
 * Checks a filter's matchers against the rules both the SQL and (later) the in-memory filter
 * rely on; throws INVALID_ARGUMENT naming the offending field.
 */
export function validateFilter(filter: EventFilter, limits: Limits, field = "filter"): EventFilter {
  const terms = filter.eventTypes.length + filter.matchers.reduce((n, m) => n + 1 + (m.values?.length ?? 0), 0);
  if (terms > limits.maxFilterTerms) {
    throw invalidArgument(field, `a filter has at most ${limits.maxFilterTerms} terms (got ${terms})`, {
      limit: String(limits.maxFilterTerms),
    });
  }
  filter.eventTypes.forEach((t, i) => {
    if (t.length === 0) throw invalidArgument(`${field}.event_types[${i}]`, "an event type must not be empty");
  });
  if (filter.storedFrom && filter.storedBefore && filter.storedFrom > filter.storedBefore) {
    throw invalidArgument(`${field}.stored_from`, "stored_from is after stored_before");
  }
  filter.matchers.forEach((m, i) => validateMatcher(m, `${field}.matchers[${i}]`));
  return filter;
}

function validateMatcher(m: Matcher, field: string): void {
  if ("metadataKey" in m.field && m.field.metadataKey.length === 0) {
    throw invalidArgument(`${field}.metadata_key`, "a metadata key must not be empty");
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
    if (property === "stored_at" && Number.isNaN(Date.parse(v as string))) {
      throw invalidArgument(operandField, "stored_at is compared with RFC 3339 times");
    }
    if (ORDERING.has(m.operator) && typeof v !== "string" && typeof v !== "number") {
      throw invalidArgument(operandField, `${m.operator} compares numbers or strings`);
    }
    if (m.operator === "regex") {
      if (typeof v !== "string") throw invalidArgument(operandField, "regex takes a string pattern");
      if (property === "stored_at") throw invalidArgument(operandField, "regex does not apply to stored_at");
      try {
        new RegExp(v);
      } catch (e) {
        throw invalidArgument(operandField, `invalid regular expression: ${(e as Error).message}`);
      }
    }
  }
}

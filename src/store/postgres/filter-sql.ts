import type { EventFilter, JsonValue, Matcher } from "../../domain";
import type { PendingQuery, Row } from "postgres";
import type { Sql } from "./sql";

type Fragment = PendingQuery<Row[]>;

/** text[]: given the array type itself, postgres.js needs no catalog lookup. */
const TEXT_ARRAY = 1009;

/**
 * Compiles a filter to a SQL condition on `eventstore.events e`, the twin of matchesFilter
 * (domain/event-matcher.ts). Regular expressions are left out: they run in memory only, so
 * this condition selects a superset when a filter has them, and readers apply
 * `matchesRegexMatchers` to what it returns. Every user value travels as a parameter; only
 * fixed fragments chosen by the operator are SQL text.
 */
export function filterSql(sql: Sql, filter: EventFilter): Fragment {
  const conditions: Fragment[] = [];
  if (filter.eventTypes.length > 0) conditions.push(sql`e.type = any(${sql.array(filter.eventTypes, TEXT_ARRAY)})`);
  if (filter.streamPrefix !== undefined) conditions.push(sql`starts_with(e.stream, ${filter.streamPrefix}::text)`);
  if (filter.category !== undefined) {
    conditions.push(sql`(e.stream = ${filter.category}::text or starts_with(e.stream, ${filter.category + "-"}::text))`);
  }
  if (filter.storedFrom) conditions.push(sql`e.stored_at >= ${filter.storedFrom}`);
  if (filter.storedBefore) conditions.push(sql`e.stored_at < ${filter.storedBefore}`);
  if (filter.group) {
    // The first 8 hex digits of the name's MD5 as an unsigned 32-bit number (bit(32) to bigint
    // zero-extends), as consumerGroupMember computes it.
    const hash = sql`('x' || substr(md5(e.stream), 1, 8))::bit(32)::bigint`;
    conditions.push(sql`${hash} % ${filter.group.size}::bigint = ${filter.group.member}::bigint`);
  }
  for (const m of filter.matchers) {
    if (m.operator === "regex") continue;
    conditions.push("metadataKey" in m.field ? metadataCondition(sql, m.field.metadataKey, m) : propertyCondition(sql, m));
  }
  return conditions.reduce((all, c) => sql`${all} and ${c}`, sql`true`);
}

function metadataCondition(sql: Sql, key: string, m: Matcher): Fragment {
  const field = sql`(e.metadata -> ${key}::text)`;
  const json = (v: JsonValue | undefined) => sql`${JSON.stringify(v ?? null)}::text::jsonb`;
  const values = () => sql`(select jsonb_array_elements(${JSON.stringify(m.values ?? [])}::text::jsonb))`;
  switch (m.operator) {
    case "eq":
      return sql`${field} = ${json(m.value)}`;
    case "ne":
      return sql`${field} <> ${json(m.value)}`;
    case "in":
      return sql`${field} in ${values()}`;
    case "not_in":
      return sql`(${field} is not null and ${field} not in ${values()})`;
    default: {
      // Ordering compares like with like; CASE keeps the cast from ever seeing another type.
      if (typeof m.value === "number") {
        const value = sql`${String(m.value)}::numeric`;
        return sql`case when jsonb_typeof(${field}) = 'number' then ${ordered(sql, sql`(${field})::numeric`, m.operator, value)} else false end`;
      }
      const value = sql`${String(m.value)}::text collate "C"`;
      return sql`case when jsonb_typeof(${field}) = 'string' then ${ordered(sql, sql`(${field} #>> '{}') collate "C"`, m.operator, value)} else false end`;
    }
  }
}

function propertyCondition(sql: Sql, m: Matcher): Fragment {
  const property = "property" in m.field ? m.field.property : "type";
  const isTime = property === "stored_at";
  const field =
    property === "type" ? sql`e.type collate "C"`
    : property === "stream" ? sql`e.stream`
    : property === "id" ? sql`e.id::text collate "C"`
    : sql`e.stored_at`;
  // Times travel as text: a parameter typed timestamptz would be parsed by postgres.js with
  // JavaScript's Date (to milliseconds), and PostgreSQL's reading is the one matchesFilter copies.
  const value = (v: JsonValue | undefined) => (isTime ? sql`${String(v)}::text::timestamptz` : sql`${String(v)}::text collate "C"`);
  const values = () =>
    isTime
      ? sql`(select v::timestamptz from jsonb_array_elements_text(${JSON.stringify(m.values ?? [])}::text::jsonb) v)`
      : sql`(select v collate "C" from jsonb_array_elements_text(${JSON.stringify(m.values ?? [])}::text::jsonb) v)`;
  switch (m.operator) {
    case "eq":
      return sql`${field} = ${value(m.value)}`;
    case "ne":
      return sql`${field} <> ${value(m.value)}`;
    case "in":
      return sql`${field} in ${values()}`;
    case "not_in":
      return sql`${field} not in ${values()}`;
    default:
      return ordered(sql, field, m.operator, value(m.value));
  }
}

function ordered(sql: Sql, left: Fragment, operator: Matcher["operator"], right: Fragment): Fragment {
  switch (operator) {
    case "gt":
      return sql`${left} > ${right}`;
    case "gte":
      return sql`${left} >= ${right}`;
    case "lt":
      return sql`${left} < ${right}`;
    default:
      return sql`${left} <= ${right}`;
  }
}

import type { EventFilter, JsonValue, Matcher } from "../../domain";
import type { PendingQuery, Row } from "postgres";
import type { Sql } from "./sql";

type Fragment = PendingQuery<Row[]>;

/** Array types, given to postgres.js as such: it needs no catalog lookup. */
const TEXT_ARRAY = 1009;
const JSONB_ARRAY = 3807;
const TIMESTAMPTZ_ARRAY = 1185;

/**
 * Compiles a filter to a SQL condition on `eventstore.events e`, the twin of matchesFilter
 * (domain/event-matcher.ts). Regular expressions are left out: they run in memory only, so
 * this condition selects a superset when a filter has them, and readers apply
 * `matchesRegexMatchers` to what it returns. Every user value travels as a parameter; only
 * fixed fragments chosen by the operator are SQL text.
 */
export function filterSql(sql: Sql, filter: EventFilter): Fragment {
  return andAll(sql, filterConditions(sql, filter));
}

/** filterSql's conditions, one by one: none when the SQL selects every event. */
export function filterConditions(sql: Sql, filter: EventFilter): Fragment[] {
  const conditions: Fragment[] = [];
  if (filter.eventTypes.length > 0) conditions.push(inList(sql, sql`e.type`, arrayParameter(sql, filter.eventTypes, TEXT_ARRAY)));
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
  return conditions;
}

export function andAll(sql: Sql, conditions: Fragment[]): Fragment {
  return conditions.reduce((all, c) => sql`${all} and ${c}`, sql`true`);
}

function metadataCondition(sql: Sql, key: string, m: Matcher): Fragment {
  const field = sql`(e.metadata -> ${key}::text)`;
  const json = (v: JsonValue | undefined) => sql`${JSON.stringify(v ?? null)}::text::jsonb`;
  // Each value as JSON text, read by jsonb's input: JSON null stays a value (not SQL NULL).
  const values = () => arrayParameter(sql, (m.values ?? []).map((v) => JSON.stringify(v)), JSONB_ARRAY);
  switch (m.operator) {
    case "eq":
      return sql`${field} = ${json(m.value)}`;
    case "ne":
      return sql`${field} <> ${json(m.value)}`;
    case "in":
      return inList(sql, field, values());
    case "not_in":
      // An absent key (SQL NULL) never matches, as for every other operator.
      return sql`(${field} is not null and ${notInList(sql, field, values())})`;
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
  // An array parameter is read by its element type's input at bind: timestamptz's reads each
  // time as the text cast above does. (Property operands are strings: validateFilter.)
  const values = () => arrayParameter(sql, (m.values ?? []).map(String), isTime ? TIMESTAMPTZ_ARRAY : TEXT_ARRAY);
  switch (m.operator) {
    case "eq":
      return sql`${field} = ${value(m.value)}`;
    case "ne":
      return sql`${field} <> ${value(m.value)}`;
    case "in":
      return inList(sql, field, values());
    case "not_in":
      return notInList(sql, field, values());
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

/**
 * `left in (values)`, looked up in a hash of the values whatever the plan. `left = any($1)`
 * hashes its array only when the array is a constant, in a custom plan; a prepared statement
 * switches to a generic plan after its fifth run (seen here on PostgreSQL and on PGlite), and
 * there it compares every row with every value: 6-9 µs an event for 99 values. An uncorrelated
 * `in (select ...)` is a hashed SubPlan in every plan (0.3-0.5 µs an event), unless the planner
 * pulls it up into a semi join, which under a LIMIT it may run as a nested loop over the values
 * (25-35 µs an event: the cost of this condition's first form). `is true` keeps the SubPlan, and
 * is what `in` means in a WHERE anyway: no match, or a NULL, selects nothing.
 */
function inList(sql: Sql, left: Fragment, values: Fragment): Fragment {
  return sql`(${left} in (select unnest(${values}))) is true`;
}

/** `left not in (values)`: never pulled up (NULLs forbid it), so always a hashed SubPlan. */
function notInList(sql: Sql, left: Fragment, values: Fragment): Fragment {
  return sql`${left} not in (select unnest(${values}))`;
}

/**
 * A parameter of an array type, sent as an array literal of the elements' texts: PostgreSQL
 * reads each with the element type's input function, once, at bind. (postgres.js would turn
 * JSON nulls into SQL NULLs, and read times with JavaScript's Date.)
 */
function arrayParameter(sql: Sql, texts: string[], arrayType: number): Fragment {
  const literal = `{${texts.map((t) => `"${t.replace(/["\\]/g, "\\$&")}"`).join(",")}}`;
  return sql`${sql.typed(literal, arrayType)}`;
}

import { DEFAULT_LIMITS, EMPTY_FILTER, validateFilter, type EventFilter, type JsonValue, type RecordedEvent } from "../../src/domain";
import { matchesFilter } from "../../src/domain/event-matcher";
import { openStore, type EventStore } from "../../src/store";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { collect, event } from "./store-contract";

// `in` and `not_in` lists travel as one array parameter: every value reaches PostgreSQL as it
// was given, whatever characters it holds, and JSON null stays a value.

const VALUES: JsonValue[] = [
  'a"b', "back\\slash", "a,b", "{braces}", " spaced ", "NULL", "null", "", "é😀", '\\"', "}", 'x","y',
  null, 0, 1.5, true, false, [], {}, ["a,b", null, '"'], { "k,\"": '{"}' }, { a: [1, { b: "\\" }] },
];
const TYPES = ['T"q', "T\\b", "T,c", "{T}", " T ", "NULL"];

let db: TestDatabase;
let store: EventStore;
let events: RecordedEvent[];

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  const batch = VALUES.map((v, i) => event(TYPES[i % TYPES.length], {}, { v }));
  batch.push(event("NoKey", {}, { other: 1 }));
  await store.append([{ stream: "lists-1", expected: "any", events: batch }]);
  events = await collect(store.readAll({ direction: "forwards", filter: EMPTY_FILTER }));
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

async function selects(filter: EventFilter): Promise<string[]> {
  validateFilter(filter, DEFAULT_LIMITS);
  const inSql = (await collect(store.readAll({ direction: "forwards", filter }))).map((e) => e.id);
  expect(inSql).toEqual(events.filter((e) => matchesFilter(filter, e)).map((e) => e.id));
  return inSql;
}

describe("an in or not_in list", () => {
  it.each(VALUES.map((v) => [JSON.stringify(v), v]))("of metadata finds the value %s exactly, and not_in leaves it and absent keys out", async (_, v) => {
    const found = await selects({ eventTypes: [], matchers: [{ field: { metadataKey: "v" }, operator: "in", values: [v, "unmatched"] }] });
    expect(found).toHaveLength(1);
    const rest = await selects({ eventTypes: [], matchers: [{ field: { metadataKey: "v" }, operator: "not_in", values: [v, "unmatched"] }] });
    expect(rest).toHaveLength(VALUES.length - 1);
  });

  it("of every value at once finds them all", async () => {
    expect(await selects({ eventTypes: [], matchers: [{ field: { metadataKey: "v" }, operator: "in", values: VALUES }] })).toHaveLength(VALUES.length);
    expect(await selects({ eventTypes: [], matchers: [{ field: { metadataKey: "v" }, operator: "not_in", values: VALUES }] })).toEqual([]);
  });

  it.each(TYPES)("of types and of the type property finds %s exactly", async (type) => {
    const count = events.filter((e) => e.type === type).length;
    expect(await selects({ eventTypes: [type, "Nope"], matchers: [] })).toHaveLength(count);
    expect(await selects({ eventTypes: [], matchers: [{ field: { property: "type" }, operator: "in", values: [type, "Nope"] }] })).toHaveLength(count);
    expect(await selects({ eventTypes: [], matchers: [{ field: { property: "type" }, operator: "not_in", values: [type] }] })).toHaveLength(events.length - count);
  });

  it("of times finds the events stored at them", async () => {
    const at = events[3].storedAt.toISOString();
    const count = events.filter((e) => e.storedAt.toISOString() === at).length;
    expect(await selects({ eventTypes: [], matchers: [{ field: { property: "stored_at" }, operator: "in", values: [at, "2001-01-01T00:00:00Z"] }] })).toHaveLength(count);
    expect(await selects({ eventTypes: [], matchers: [{ field: { property: "stored_at" }, operator: "not_in", values: [at] }] })).toHaveLength(events.length - count);
  });
});

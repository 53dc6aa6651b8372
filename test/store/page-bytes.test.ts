import { randomUUID } from "node:crypto";
import { DEFAULT_LIMITS, eventBytes } from "../../src/domain";
import { openStore, type EventStore } from "../../src/store";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// Read pages are sized by whole events: a log of events with 200 KB of metadata and no data is
// read about 4 MiB at a time, not 1,000 rows (200 MB) at a time as when only data was counted.

const METADATA_BYTES = 200_000;
const EVENTS = 130;

let db: TestDatabase;
let store: EventStore;

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url }, limits: DEFAULT_LIMITS });
  const event = () => ({ id: randomUUID(), type: "Big", contentType: "application/json", data: new Uint8Array(0), metadata: { blob: "m".repeat(METADATA_BYTES) } });
  for (let i = 0; i < EVENTS; i += 65) {
    await store.append([{ stream: "big-1", expected: "any", events: Array.from({ length: Math.min(65, EVENTS - i) }, event) }]);
  }
}, 60_000);
afterAll(async () => {
  await store?.close();
  await db?.drop();
});

describe("read pages", () => {
  it.each([
    ["the log", () => store.readAll({ direction: "forwards", filter: { eventTypes: [], matchers: [] } })],
    ["a stream", () => store.readStream("big-1", { direction: "forwards" })],
  ])("of %s after the first hold about 4 MiB of events, metadata counted", async (_, read) => {
    const sizes: number[] = [];
    for await (const page of read()) {
      sizes.push(page.length);
      // Measured on reading, as eventBytes counts them (PostgreSQL's text may add a little).
      for (const e of page) expect(e.bytes).toBeGreaterThanOrEqual(eventBytes(e.stream, e) - 16);
    }
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(EVENTS);
    // The first page is 100 rows, whatever they hold; the next is sized by what those held.
    const [, second] = sizes;
    expect(second).toBeLessThanOrEqual(Math.ceil((4 * 1024 * 1024) / METADATA_BYTES));
  });
});

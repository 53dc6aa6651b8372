import { randomBytes, randomUUID } from "node:crypto";
import { EMPTY_FILTER, recordedEventBytes, silentLogger, type ProposedEvent, type RecordedEvent } from "../../src/domain";
import { openStore, type EventStore } from "../../src/store";
import { createLiveFeed } from "../../src/subscriptions";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { until } from "../support/until";
import { collect } from "./store-contract";

// Every read statement is cut at about the page bytes (4 MiB by default) in the database, the
// first page and the live feed's reads included: whatever the events' size, one statement
// hands this process no more than that and one event more.

const PAGE_BYTES = 4 * 1024 * 1024;
const BIG = 300_000;

let db: TestDatabase;
let store: EventStore;

const big = (kind: "data" | "metadata"): ProposedEvent => ({
  id: randomUUID(),
  type: "Big",
  contentType: "application/octet-stream",
  // Random data is stored as it is; repeated metadata is compressed, and measured as text.
  data: kind === "data" ? randomBytes(BIG) : new Uint8Array(0),
  metadata: kind === "metadata" ? { blob: "m".repeat(BIG) } : {},
});

async function appendBig(stream: string, kind: "data" | "metadata", count: number) {
  for (let done = 0; done < count; done += 40) {
    await store.append([{ stream, expected: "any", events: Array.from({ length: Math.min(40, count - done) }, () => big(kind)) }]);
  }
}

const bytes = (events: RecordedEvent[]) => events.reduce((n, e) => n + recordedEventBytes(e), 0);
/** A page holds less than the page bytes before its last event. */
const withinCut = (events: RecordedEvent[]) => bytes(events) - recordedEventBytes(events[events.length - 1]) < PAGE_BYTES;

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  await appendBig("data-1", "data", 60);
  await appendBig("meta-1", "metadata", 60);
}, 120_000);

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

describe("a read statement", () => {
  it.each([
    ["the log", () => store.readAll({ direction: "forwards", filter: EMPTY_FILTER })],
    ["the log backwards", () => store.readAll({ direction: "backwards", filter: EMPTY_FILTER })],
    ["the log, filtered", () => store.readAll({ direction: "forwards", filter: { eventTypes: ["Big"], matchers: [] } })],
    ["a stream of big data", () => store.readStream("data-1", { direction: "forwards" })],
    ["a stream of big metadata", () => store.readStream("meta-1", { direction: "forwards" })],
  ])("of %s holds about 4 MiB from its first page on", async (name, read) => {
    const pages: RecordedEvent[][] = [];
    for await (const page of read()) pages.push(page);
    expect(pages.flat().length).toBe(name.startsWith("a stream") ? 60 : 120);
    // 100 rows of 300 KB would be 30 MB.
    expect(pages[0].length).toBeLessThanOrEqual(Math.ceil(PAGE_BYTES / BIG) + 1);
    for (const page of pages) expect(withinCut(page)).toBe(true);
  });

  it("of a catch-up page of 1,000 rows holds about 4 MiB, and the pages walk the whole log", async () => {
    const seen: RecordedEvent[] = [];
    let page = await store.readAfter({ filter: EMPTY_FILTER }, 0n, 1000);
    for (let calls = 0; ; calls++) {
      expect(calls).toBeLessThan(200);
      expect(withinCut(page.events)).toBe(true);
      seen.push(...page.events);
      if (page.end) break;
      page = await store.readAfter({ filter: EMPTY_FILTER }, page.reached, 1000);
    }
    expect(seen.map((e) => e.position)).toEqual((await collect(store.readAll({ direction: "forwards", filter: EMPTY_FILTER }))).map((e) => e.position));
  });
});

describe("the live feed", () => {
  it("reads big events about 4 MiB at a time, and small ones 1,000 at a time", async () => {
    const feed = createLiveFeed({ store, log: silentLogger, pollIntervalMs: 60_000, pageSize: 1000 });
    await feed.start();
    const batches: RecordedEvent[][] = [];
    feed.attach({ deliver: (events) => void (events.length > 0 && batches.push(events)), fail: (e) => { throw e; } }, feed.head);
    try {
      const start = feed.head;
      await appendBig("data-2", "data", 40);
      await until(async () => feed.head >= start + 40n, "the feed to read the big events", 20_000);
      const bigBatches = batches.splice(0);
      expect(bigBatches.flat().length).toBe(40);
      expect(bigBatches.length).toBeGreaterThan(1);
      for (const b of bigBatches) expect(withinCut(b)).toBe(true);

      const small = Array.from({ length: 2500 }, () => ({ id: randomUUID(), type: "Small", contentType: "application/json", data: Buffer.from("{}"), metadata: {} }));
      const [written] = await store.append([{ stream: "small-1", expected: "any", events: small }]);
      await until(async () => feed.head >= written.positions[2499], "the feed to read the small events", 20_000);
      expect(batches.map((b) => b.length)).toEqual([1000, 1000, 500]);
    } finally {
      await feed.stop();
    }
  }, 60_000);
});

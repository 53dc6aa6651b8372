import { silentLogger } from "../../src/domain";
import { openStore, type EventStore } from "../../src/store";
import { createLiveFeed, subscribe, type LiveFeed } from "../../src/subscriptions";
import { COSTLY_FILTER, COSTLY_MARKER, uncancelledCostlyMs, watchActivity, writeCostlyLog } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { until } from "../support/until";

// A subscription whose consumer goes away while its history is read stops that read in the
// database at once, rather than leaving it to run to its end.

let db: TestDatabase;
let store: EventStore;
let feed: LiveFeed;
let activity: ReturnType<typeof watchActivity>;
/** A cancelled statement stops within this: 250 ms, or half of what it takes uncancelled on a busier machine. */
let stopWithinMs: number;

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  await writeCostlyLog(store);
  feed = createLiveFeed({ store, log: silentLogger, pollIntervalMs: 60_000, pageSize: 1000 });
  await feed.start();
  activity = watchActivity(db.name);
  stopWithinMs = Math.max(250, (await uncancelledCostlyMs(store)) / 2);
}, 60_000);

afterAll(async () => {
  await activity?.close();
  await feed?.stop();
  await store?.close();
  await db?.drop();
});

describe("a subscription's catch-up read", () => {
  it("is cancelled in the database when the subscription's signal aborts", async () => {
    const controller = new AbortController();
    const settings = { store, feed, queue: { maxEvents: 1000, maxBytes: 1 << 24 }, pageSize: 1000, checkpointIntervalMs: 60_000 };
    const messages = subscribe(settings, { selection: { filter: COSTLY_FILTER }, start: { kind: "start" }, heartbeatMs: 60_000 }, controller.signal);
    expect((await messages.next()).value).toMatchObject({ kind: "confirmation" });
    // Reads history: the costly statement runs (its first window is 64 events, about 0.6 s).
    const next = messages.next();
    const [running] = await until(async () => {
      const found = await activity.active(COSTLY_MARKER);
      return found.length > 0 && found;
    }, "the catch-up statement to run", 5000);
    const aborted = Date.now();
    controller.abort();
    await until(async () => !(await activity.active(COSTLY_MARKER)).some((s) => s.pid === running.pid), "the statement to stop", 5000);
    const stoppedMs = Date.now() - aborted;
    if (process.env.SHOW_TIMES) console.log(`catch-up statement stopped ${stoppedMs} ms after the abort (bound ${Math.round(stopWithinMs)} ms)`);
    expect(stoppedMs).toBeLessThan(stopWithinMs);
    // The subscription ends, with no error.
    expect(await next).toEqual({ done: true, value: undefined });
  });
});

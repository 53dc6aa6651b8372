import { randomUUID } from "node:crypto";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { isEventStoreError, type ProposedEvent } from "../../src/domain";
import { openStore, type EventStore } from "../../src/store";
import { COSTLY_FILTER, COSTLY_MARKER, uncancelledCostlyMs, watchActivity, writeCostlyLog } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { until } from "../support/until";
import { holdLogLock } from "../support/log-lock";

// Seconds of PostgreSQL work in one statement for the costly filter: long enough to be caught running.

let db: TestDatabase;
let store: EventStore;
let activity: ReturnType<typeof watchActivity>;
/** A cancelled statement stops within this: 300 ms, or half of what it takes uncancelled on a busier machine. */
let stopWithinMs: number;

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  await writeCostlyLog(store);
  activity = watchActivity(db.name);
  stopWithinMs = Math.max(300, (await uncancelledCostlyMs(store)) / 2);
}, 120_000);

afterAll(async () => {
  await activity?.close();
  await store?.close();
  await db?.drop();
});

const event = (): ProposedEvent => ({ id: randomUUID(), type: "Tested", contentType: "application/json", data: new TextEncoder().encode("{}"), metadata: {} });

/** Waits until the costly statement runs, and answers when it stopped after `abort()`, in ms. */
async function stoppedAfterAbort(controller: AbortController): Promise<number> {
  const [running] = await until(async () => {
    const found = await activity.active(COSTLY_MARKER);
    return found.length > 0 && found;
  }, "the costly statement to run", 5000);
  const aborted = Date.now();
  controller.abort();
  await until(async () => !(await activity.active(COSTLY_MARKER)).some((s) => s.pid === running.pid), "the statement to stop", 5000);
  return Date.now() - aborted;
}

describe("a read whose caller goes away stops its SQL at once", () => {
  it("readAll: the statement in flight is cancelled and the read ends with no error", async () => {
    const controller = new AbortController();
    const pages: unknown[] = [];
    const reading = (async () => {
      for await (const page of store.readAll({ direction: "forwards", filter: COSTLY_FILTER }, controller.signal)) pages.push(page);
    })();
    const stoppedMs = await stoppedAfterAbort(controller);
    await reading;
    if (process.env.SHOW_TIMES) console.log(`readAll statement stopped ${stoppedMs} ms after the abort`);
    expect(pages).toEqual([]);
    // Uncancelled, the statement would run for seconds more.
    expect(stoppedMs).toBeLessThan(stopWithinMs);
  });

  it("readAfter: rejects with the signal's reason, and its statement is cancelled", async () => {
    const controller = new AbortController();
    const page = store.readAfter({ filter: COSTLY_FILTER }, 0n, 100, controller.signal);
    const outcome = page.then(
      () => "answered",
      (e) => e,
    );
    const stoppedMs = await stoppedAfterAbort(controller);
    expect(await outcome).toBe(controller.signal.reason);
    expect(stoppedMs).toBeLessThan(stopWithinMs);
  });

  it("a read or an append whose signal has already aborted sends nothing", async () => {
    // A store of a database that is not there: whatever it sent would fail with UNAVAILABLE.
    const nowhere = await openStore({ location: { kind: "postgres", url: "postgres://postgres@127.0.0.1:1/none" }, migrate: false });
    try {
      const reason = new Error("gone");
      const pages: unknown[] = [];
      for await (const page of nowhere.readAll({ direction: "forwards", filter: COSTLY_FILTER }, AbortSignal.abort(reason))) pages.push(page);
      for await (const page of nowhere.readStream("load-0", { direction: "forwards" }, AbortSignal.abort(reason))) pages.push(page);
      expect(pages).toEqual([]);
      await expect(nowhere.readAfter({ filter: COSTLY_FILTER }, 0n, 100, AbortSignal.abort(reason))).rejects.toBe(reason);
      await expect(nowhere.append([{ stream: "s-1", expected: "any", events: [event()] }], AbortSignal.abort(reason))).rejects.toBe(reason);
      await expect(nowhere.head()).rejects.toMatchObject({ kind: "UNAVAILABLE" });
    } finally {
      await nowhere.close();
    }
  });
});

describe("an append whose caller has gone before it is sent is not sent", () => {
  it("an append whose signal has already aborted writes nothing and rejects with the reason", async () => {
    const stream = `gone-${randomUUID()}`;
    const reason = new Error("the client went away");
    await expect(store.append([{ stream, expected: "any", events: [event()] }], AbortSignal.abort(reason))).rejects.toBe(reason);
    await expect(store.getStream(stream)).rejects.toMatchObject({ kind: "STREAM_NOT_FOUND" });
  });

  it("an append whose deadline passes while it waits for the batch ahead leaves the queue at once and writes nothing", async () => {
    const ahead = `ahead-${randomUUID()}`;
    const late = `late-${randomUUID()}`;
    // Another session holds the log lock, so the first append's batch waits in the database.
    const lock = await holdLogLock(db.url);
    try {
      const first = store.append([{ stream: ahead, expected: "any", events: [event()] }]);
      await until(async () => (await activity.active("append_batch")).length > 0, "the first batch to wait on the lock", 5000);
      const started = Date.now();
      const second = store.append([{ stream: late, expected: "any", events: [event()] }], AbortSignal.timeout(200));
      const error = await Promise.race([
        second.then(() => "written", (e) => e),
        new Promise((r) => setTimeout(() => r("still waiting"), 2000)),
      ]);
      const waitedMs = Date.now() - started;
      expect(error).toMatchObject({ name: "TimeoutError" });
      // Answered when its deadline passed, not when the batch ahead was done.
      expect(waitedMs).toBeLessThan(1000);
      await lock.release();
      const [result] = await first;
      expect(result.stream).toBe(ahead);
      // The batcher has written everything it had: the late append was not among it.
      await store.append([{ stream: `after-${randomUUID()}`, expected: "any", events: [event()] }]);
      await expect(store.getStream(late)).rejects.toMatchObject({ kind: "STREAM_NOT_FOUND" });
    } finally {
      await lock.release();
    }
  });

  it("an append already sent when its signal aborts is not withdrawn: its outcome is the database's", async () => {
    const stream = `sent-${randomUUID()}`;
    const lock = await holdLogLock(db.url);
    try {
      const controller = new AbortController();
      const append = store.append([{ stream, expected: "any", events: [event()] }], controller.signal);
      await until(async () => (await activity.active("append_batch")).length > 0, "the batch to wait on the lock", 5000);
      controller.abort();
      await lock.release();
      const [result] = await append;
      expect(result.revision).toBe(0n);
      expect((await store.getStream(stream)).revision).toBe(0n);
    } finally {
      await lock.release();
    }
  });
});

describe("a cancel request that cannot reach the database", () => {
  let proxy: Server;
  const sockets = new Set<Socket>();

  afterEach(() => {
    for (const s of sockets) s.destroy();
    proxy?.close();
  });

  it("is no unhandled rejection: the read still ends, and the statement is left to the statement timeout", async () => {
    // A proxy whose open connection keeps working while new ones are refused: the cancel
    // request, sent on a new connection, meets ECONNREFUSED.
    proxy = createServer((client) => {
      const upstream = netConnect(Number(new URL(db.url).port || 5432), new URL(db.url).hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on("error", () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
    const url = new URL(db.url);
    url.host = `127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const proxied = await openStore({ location: { kind: "postgres", url: url.toString(), poolSize: 1 }, migrate: false });
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      await proxied.head(); // the pool's connection is open before the proxy stops taking new ones
      const controller = new AbortController();
      const reading = (async () => {
        for await (const _ of proxied.readAll({ direction: "forwards", filter: COSTLY_FILTER }, controller.signal));
      })();
      await until(async () => (await activity.active(COSTLY_MARKER)).length > 0, "the costly statement to run", 5000);
      proxy.close();
      controller.abort();
      await reading;
      await new Promise((r) => setTimeout(r, 300));
      expect(unhandled.filter((e) => !isEventStoreError(e))).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      for (const s of sockets) s.destroy();
      await proxied.close();
    }
  });
});

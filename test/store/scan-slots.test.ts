import { openStore, type EventStore } from "../../src/store";
import { EMPTY_FILTER, type EventFilter } from "../../src/domain";
import { readAfter } from "../../src/store/postgres/read-after";
import { readAll } from "../../src/store/postgres/read-all";
import { createScanSlots, type ScanSlots } from "../../src/store/postgres/scan-slots";
import { connect } from "../../src/store/postgres/sql";
import { COSTLY_FILTER, COSTLY_MARKER, watchActivity, writeCostlyLog } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { until } from "../support/until";

describe("scan slots", () => {
  const later = () => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    return { promise, resolve };
  };

  it("run at most `max` scans at once, the rest in the order they came", async () => {
    const slots = createScanSlots(2);
    const gates = Array.from({ length: 5 }, later);
    const started: number[] = [];
    const runs = gates.map((gate, i) =>
      slots.run(async () => {
        started.push(i);
        await gate.promise;
        return i;
      }),
    );
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1]);
    expect(slots.waiting).toBe(3);
    gates[1].resolve();
    await runs[1];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([0, 1, 2]);
    for (const g of gates) g.resolve();
    expect(await Promise.all(runs)).toEqual([0, 1, 2, 3, 4]);
    expect(started).toEqual([0, 1, 2, 3, 4]);
    expect(slots.waiting).toBe(0);
  });

  it("take turns by reader: one that keeps many scans queued delays another's by at most one of its own", async () => {
    const slots = createScanSlots(1);
    const order: string[] = [];
    const gate = later();
    const first = slots.run(() => gate.promise, undefined, "busy");
    const busy = Array.from({ length: 5 }, (_, i) => slots.run(async () => void order.push(`busy-${i}`), undefined, "busy"));
    const other = slots.run(async () => void order.push("other"), undefined, "other");
    const again = slots.run(async () => void order.push("other-2"), undefined, "other");
    gate.resolve();
    await Promise.all([first, ...busy, other, again]);
    expect(order).toEqual(["busy-0", "other", "busy-1", "other-2", "busy-2", "busy-3", "busy-4"]);
    expect(slots.waiting).toBe(0);
  });

  it("a waiting reader that leaves the line gives its turn to the next", async () => {
    const slots = createScanSlots(1);
    const gate = later();
    const first = slots.run(() => gate.promise, undefined, "a");
    const controller = new AbortController();
    const gone = slots.run(async () => "never", controller.signal, "b");
    const next = slots.run(async () => "c ran", undefined, "c");
    controller.abort(new Error("b went"));
    await expect(gone).rejects.toThrow("b went");
    gate.resolve();
    await first;
    expect(await next).toBe("c ran");
    expect(await slots.run(async () => "b again", undefined, "b")).toBe("b again");
    expect(slots.waiting).toBe(0);
  });

  it("a scan whose caller goes while it waits leaves the line with the reason and never runs; a failed scan frees its slot", async () => {
    const slots = createScanSlots(1);
    const gate = later();
    const first = slots.run(() => gate.promise);
    const controller = new AbortController();
    let ran = false;
    const gone = slots.run(async () => void (ran = true), controller.signal);
    const next = slots.run(async () => "next");
    controller.abort(new Error("gone"));
    await expect(gone).rejects.toThrow("gone");
    expect(slots.waiting).toBe(1);
    gate.resolve();
    await first;
    expect(await next).toBe("next");
    expect(ran).toBe(false);
    await expect(slots.run(() => Promise.reject(new Error("failed")))).rejects.toThrow("failed");
    expect(await slots.run(async () => "free")).toBe("free");
    await expect(slots.run(async () => "never", AbortSignal.abort(new Error("already")))).rejects.toThrow("already");
  });
});

describe("a store's filtered scans, all callers together", () => {
  let db: TestDatabase;
  let store: EventStore;
  let activity: ReturnType<typeof watchActivity>;

  beforeAll(async () => {
    db = await createTestDatabase();
    // No statement timeout: these tests count statements running together, and on a machine busy
    // with other suites a costly one has run past 30 s (CI, 8 December).
    store = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 8 }, maxConcurrentScans: 1, statementTimeoutMs: 0 });
    await writeCostlyLog(store);
    activity = watchActivity(db.name);
  }, 120_000);

  afterAll(async () => {
    await activity?.close();
    await store?.close();
    await db?.drop();
  });

  /** Runs 4 costly readers of the log at once: the most costly statements seen running together. */
  async function mostAtOnce(reader: EventStore): Promise<{ most: number; seen: number }> {
    let finished = false;
    const readers = Promise.all(
      Array.from({ length: 4 }, async () => {
        let events = 0;
        for await (const page of reader.readAll({ direction: "forwards", filter: COSTLY_FILTER })) events += page.length;
        return events;
      }),
    ).finally(() => (finished = true));
    let most = 0;
    let seen = 0;
    await until(async () => {
      const running = (await activity.active(COSTLY_MARKER)).length;
      most = Math.max(most, running);
      if (running > 0) seen++;
      // Meanwhile a stream is read, waiting for no scan.
      const [page] = await collect(reader.readStream("costly-1", { direction: "forwards", limit: 1n }));
      expect(page).toHaveLength(1);
      return finished;
    }, "the readers to finish", 150_000);
    const counts = await readers;
    expect(new Set(counts).size).toBe(1);
    return { most, seen };
  }

  it("run one statement at a time with --max-concurrent-scans 1, while reads of a stream go on", async () => {
    const { most, seen } = await mostAtOnce(store);
    expect(seen).toBeGreaterThan(0);
    expect(most).toBe(1);
  }, 200_000);

  it("are the statements of filtered reads and of reads matched by regular expressions; stream and whole-log reads take none", async () => {
    const sql = connect({ url: db.url, max: 2 });
    let taken = 0;
    const inner = createScanSlots(1);
    const slots: ScanSlots = { run: (scan, signal) => (taken++, inner.run(scan, signal)), waiting: 0 };
    const page = { pageBytes: 4 << 20, maxPageRows: 1000, scanSlots: slots };
    const regexOnly: EventFilter = { ...EMPTY_FILTER, matchers: [{ field: { metadataKey: "k" }, operator: "regex", value: "^never$" }] };
    const typed: EventFilter = { ...EMPTY_FILTER, eventTypes: ["NoSuchType"] };
    const takenBy = async (read: () => Promise<unknown>) => {
      taken = 0;
      await read();
      return taken;
    };
    const drain = async (pages: AsyncIterable<unknown>) => {
      for await (const _ of pages);
    };
    try {
      expect(await takenBy(() => drain(readAll(sql, { direction: "forwards", filter: EMPTY_FILTER }, page)))).toBe(0);
      expect(await takenBy(() => readAfter(sql, { filter: EMPTY_FILTER }, 0n, 100, page))).toBe(0);
      expect(await takenBy(() => readAfter(sql, { stream: "costly-1", filter: EMPTY_FILTER }, 0n, 100, page))).toBe(0);
      expect(await takenBy(() => drain(readAll(sql, { direction: "forwards", filter: typed }, page)))).toBeGreaterThan(0);
      expect(await takenBy(() => readAfter(sql, { filter: typed }, 0n, 100, page))).toBeGreaterThan(0);
      expect(await takenBy(() => drain(readAll(sql, { direction: "forwards", filter: regexOnly }, page)))).toBeGreaterThan(0);
      expect(await takenBy(() => readAfter(sql, { filter: regexOnly }, 0n, 100, page))).toBeGreaterThan(0);
    } finally {
      await sql.end();
    }
  });

  it("run side by side, as many as allowed: with 4 slots, more than one at once was seen", async () => {
    const wide = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 8 }, maxConcurrentScans: 4, migrate: false, statementTimeoutMs: 0 });
    try {
      const { most } = await mostAtOnce(wide);
      expect(most).toBeGreaterThan(1);
    } finally {
      await wide.close();
    }
  }, 200_000);
});

async function collect<T>(pages: AsyncIterable<T[]>): Promise<T[][]> {
  const all: T[][] = [];
  for await (const page of pages) all.push(page);
  return all;
}

import { openStore, type EventStore } from "../../src/store";
import { createScanSlots } from "../../src/store/postgres/scan-slots";
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
    store = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 8 }, maxConcurrentScans: 1 });
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
    }, "the readers to finish", 60_000);
    const counts = await readers;
    expect(new Set(counts).size).toBe(1);
    return { most, seen };
  }

  it("run one statement at a time with --max-concurrent-scans 1, while reads of a stream go on", async () => {
    const { most, seen } = await mostAtOnce(store);
    expect(seen).toBeGreaterThan(0);
    expect(most).toBe(1);
  }, 90_000);

  it("run side by side, as many as allowed: with 4 slots, more than one at once was seen", async () => {
    const wide = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 8 }, maxConcurrentScans: 4, migrate: false });
    try {
      const { most } = await mostAtOnce(wide);
      expect(most).toBeGreaterThan(1);
    } finally {
      await wide.close();
    }
  }, 90_000);
});

async function collect<T>(pages: AsyncIterable<T[]>): Promise<T[][]> {
  const all: T[][] = [];
  for await (const page of pages) all.push(page);
  return all;
}

import { randomUUID } from "node:crypto";
import postgres from "postgres";
import type { EventStoreError, StreamAppend } from "../../src/domain";
import { openStore, type AppendResult, type EventStore } from "../../src/store";
import { appendBatch } from "../../src/store/postgres/append";
import { createAppendBatcher } from "../../src/store/postgres/append-batcher";
import { connect, type Sql } from "../../src/store/postgres/sql";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { event, failure } from "./store-contract";

// Appends that arrive while a batch is being written go together in the next one: one
// transaction, one log lock, one NOTIFY. Each keeps its own outcome, exactly as if the appends
// had been committed one after another in arrival order.

let db: TestDatabase;
let store: EventStore;
let sql: Sql;

beforeAll(async () => {
  db = await createTestDatabase();
  store = await openStore({ location: { kind: "postgres", url: db.url } });
  sql = connect({ url: db.url, max: 2 });
});

afterAll(async () => {
  await sql?.end();
  await store?.close();
  await db?.drop();
});

const name = (prefix: string) => `${prefix}-${randomUUID()}`;

/** The transactions (xmin) that wrote each stream's events. */
async function writers(streams: string[]): Promise<Map<string, string>> {
  const rows = await sql<{ stream: string; xmin: string }[]>`
    select distinct stream, xmin::text from eventstore.events where stream = any(${streams})`;
  return new Map(rows.map((r) => [r.stream, r.xmin]));
}

describe("append batching", () => {
  it("gathers appends that arrive together into a few transactions and one NOTIFY each, with dense positions", async () => {
    const listener = postgres(db.url, { max: 1, onnotice: () => {} });
    const notified: string[] = [];
    await listener.listen("eventstore_events", (payload) => notified.push(payload));
    try {
      const streams = Array.from({ length: 40 }, () => name("together"));
      const results = await Promise.all(streams.map((s) => store.append([{ stream: s, expected: "no_stream", events: [event(), event()] }])));
      const positions = results.flatMap(([r]) => r.positions).sort((a, b) => (a < b ? -1 : 1));
      expect(positions.length).toBe(80);
      positions.forEach((p, i) => expect(p).toBe(positions[0] + BigInt(i)));
      // The first goes alone at once; the other 39 arrived while it was written.
      const transactions = new Set((await writers(streams)).values());
      expect(transactions.size).toBe(2);
      await new Promise((r) => setTimeout(r, 200));
      expect(notified).toEqual(expect.arrayContaining([String(positions.at(-1))]));
      expect(notified.length).toBeLessThanOrEqual(2);
    } finally {
      await listener.end();
    }
  });

  it("gives each append in a batch its own outcome, as if they had been committed one by one in arrival order", async () => {
    const [s, tombstoned, u, v, w, e] = ["s", "tomb", "u", "v", "w", "e"].map(name);
    await store.append([{ stream: tombstoned, expected: "any", events: [event()] }]);
    await store.deleteStream(tombstoned, "any", "tombstone");
    await store.append([{ stream: e, expected: "any", events: [event()] }]);
    const shared = event("Shared");

    const appends: StreamAppend[][] = [
      [{ stream: name("first"), expected: "any", events: [event()] }], // goes alone, the rest wait
      [{ stream: s, expected: "no_stream", events: [event()] }], // 1: written
      [{ stream: s, expected: "no_stream", events: [event()] }], // 2: s exists by now
      [{ stream: s, expected: 0n, events: [event(), event()] }], // 3: meets 1's revision
      [{ stream: tombstoned, expected: "any", events: [event()] }], // 4: tombstoned
      [{ stream: u, expected: "any", events: [shared] }], // 5: written
      [{ stream: v, expected: "any", events: [shared] }], // 6: the id is in u now
      [{ stream: u, expected: "no_stream", events: [shared] }], // 7: a retry of 5: replayed
      [
        { stream: w, expected: "no_stream", events: [event()] },
        { stream: s, expected: 9n, events: [event()] },
      ], // 8: all or nothing, and s is at 2
      [{ stream: e, expected: 0n, events: [event()] }], // 9: written
    ];
    const outcomes = await Promise.allSettled(appends.map((a) => store.append(a)));
    const ok = (i: number) => (outcomes[i] as PromiseFulfilledResult<AppendResult[]>).value;
    const failed = (i: number) => (outcomes[i] as PromiseRejectedResult).reason as EventStoreError;

    expect(outcomes.map((o) => o.status)).toEqual([
      "fulfilled", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled", "rejected", "fulfilled",
    ]);
    expect(ok(1)[0].revision).toBe(0n);
    expect(failed(2)).toMatchObject({ kind: "WRONG_EXPECTED_REVISION", facts: { stream: s, actual_revision: "0" } });
    expect(ok(3)[0].revision).toBe(2n);
    expect(failed(4)).toMatchObject({ kind: "STREAM_TOMBSTONED", facts: { stream: tombstoned } });
    expect(failed(6)).toMatchObject({ kind: "DUPLICATE_EVENT_ID", facts: { event_id: shared.id } });
    expect(ok(7)[0]).toMatchObject({ replayed: true, positions: ok(5)[0].positions, revision: 0n });
    expect(failed(8)).toMatchObject({ kind: "WRONG_EXPECTED_REVISION", facts: { stream: s, actual_revision: "2" } });
    expect(ok(9)[0].revision).toBe(1n);

    // 1 to 9 went in one transaction, in arrival order: positions follow it.
    const byStream = await writers([s, u, e]);
    expect(new Set(byStream.values()).size).toBe(1);
    const written = [ok(1), ok(3), ok(5), ok(9)].flatMap((r) => r[0].positions);
    written.forEach((p, i) => expect(p).toBe(written[0] + BigInt(i)));
    // What failed wrote nothing, not even the good half of the multi-stream append.
    expect(await failure(store.getStream(w))).toMatchObject({ kind: "STREAM_NOT_FOUND" });
    const [{ rows }] = await sql<{ rows: number }[]>`select count(*)::int as rows from eventstore.streams where name = any(${[v, w]})`;
    expect(rows).toBe(0); // not even an empty stream row, as before batching
    expect((await writers([v, w])).size).toBe(0);
  });

  it("tries each append alone when the batch's statement fails as a whole, so that no neighbour fails with it", async () => {
    let failures = 0;
    const committed: bigint[] = [];
    const batcher = createAppendBatcher({
      run: async (batch) => {
        // Once, as a race with another server over an event id would: the statement fails.
        if (batch.length > 1 && failures++ === 0) {
          throw Object.assign(new Error("duplicate key value violates unique constraint"), { code: "23505", constraint_name: "events_id_key" });
        }
        return appendBatch(sql, batch);
      },
      maxEvents: 1000,
      maxBytes: 1 << 20,
      onCommit: (last) => committed.push(last),
    });
    const streams = Array.from({ length: 5 }, () => name("alone"));
    const results = await Promise.all(streams.map((s) => batcher.append([{ stream: s, expected: "no_stream", events: [event()] }])));
    expect(failures).toBe(1); // the batch of four failed once; each of them then went alone
    expect(results.map(([r]) => r.revision)).toEqual([0n, 0n, 0n, 0n, 0n]);
    expect(new Set((await writers(streams)).values()).size).toBe(5);
    expect(committed.length).toBe(2);
  });

  it("fails every append of a batch with UNAVAILABLE when the database is unreachable, without retrying them", async () => {
    let calls = 0;
    const batcher = createAppendBatcher({
      run: async (batch) => {
        calls++;
        if (batch.length > 1) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        return appendBatch(sql, batch);
      },
      maxEvents: 1000,
      maxBytes: 1 << 20,
      onCommit: () => {},
    });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 4 }, () => batcher.append([{ stream: name("down"), expected: "any", events: [event()] }])),
    );
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "rejected", "rejected"]);
    for (const o of outcomes.slice(1)) expect((o as PromiseRejectedResult).reason).toMatchObject({ kind: "UNAVAILABLE" });
    expect(calls).toBe(2);
  });

  it("keeps a batch within the largest single append's size: more waiting events go in the next batch", async () => {
    const sizes: number[] = [];
    const batcher = createAppendBatcher({
      run: (batch) => {
        sizes.push(batch.reduce((n, appends) => n + appends.reduce((m, a) => m + a.events.length, 0), 0));
        return appendBatch(sql, batch);
      },
      maxEvents: 10,
      maxBytes: 1 << 20,
      onCommit: () => {},
    });
    await Promise.all(
      [1, 4, 4, 4, 12, 1].map((n) => batcher.append([{ stream: name("sized"), expected: "any", events: Array.from({ length: n }, () => event()) }])),
    );
    // 1 alone; then 4 + 4 (a third 4 would pass 10); 4 alone (12 does not fit beside it); 12
    // alone, larger than the cap but a valid append; 1.
    expect(sizes).toEqual([1, 8, 4, 12, 1]);
  });
});

import { randomUUID } from "node:crypto";
import postgres from "postgres";
import type { ProposedEvent } from "../../src/domain";
import { connect, openStore, type EventStore } from "../../src/store";
import { COSTLY_FILTER, COSTLY_MARKER, watchActivity, writeCostlyLog } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { until } from "../support/until";
import { holdLogLock } from "../support/log-lock";

// Seconds of PostgreSQL work in one statement for the costly filter, far past the timeout below.
const TIMEOUT_MS = 200;

let db: TestDatabase;
let store: EventStore;
let activity: ReturnType<typeof watchActivity>;

beforeAll(async () => {
  db = await createTestDatabase();
  const writer = await openStore({ location: { kind: "postgres", url: db.url } });
  await writeCostlyLog(writer);
  await writer.close();
  store = await openStore({ location: { kind: "postgres", url: db.url }, statementTimeoutMs: TIMEOUT_MS });
  activity = watchActivity(db.name);
}, 120_000);

afterAll(async () => {
  await activity?.close();
  await store?.close();
  await db?.drop();
});

const event = (): ProposedEvent => ({ id: randomUUID(), type: "Tested", contentType: "application/json", data: new TextEncoder().encode("{}"), metadata: {} });

async function failure(work: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = Date.now();
  try {
    await work();
  } catch (error) {
    return { error, ms: Date.now() - started };
  }
  throw new Error("expected a failure");
}

describe("every statement runs under the statement timeout", () => {
  it("is set on each connection from the setting, and 0 sets none", async () => {
    for (const [ms, shown] of [[1234, "1234ms"], [0, "0"]] as const) {
      const sql = connect({ url: db.url, max: 1, statementTimeoutMs: ms });
      try {
        expect((await sql<{ statement_timeout: string }[]>`show statement_timeout`)[0].statement_timeout).toBe(shown);
      } finally {
        await sql.end({ timeout: 1 });
      }
    }
  });

  it("a read past it fails with STATEMENT_TIMEOUT, naming the setting and its value, and its statement is gone", async () => {
    const { error, ms } = await failure(async () => {
      for await (const _ of store.readAll({ direction: "forwards", filter: COSTLY_FILTER }));
    });
    expect(error).toMatchObject({
      kind: "STATEMENT_TIMEOUT",
      message: `The request's database work ran past the statement timeout of ${TIMEOUT_MS} ms (setting statement-timeout-ms)`,
      facts: { setting: "statement-timeout-ms", limit_ms: String(TIMEOUT_MS) },
    });
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 20);
    expect(ms).toBeLessThan(TIMEOUT_MS + 600);
    expect(await activity.active(COSTLY_MARKER)).toEqual([]);
  });

  it("a catch-up page past it fails the same way", async () => {
    const { error } = await failure(() => store.readAfter({ filter: COSTLY_FILTER }, 0n, 100));
    expect(error).toMatchObject({ kind: "STATEMENT_TIMEOUT" });
  });

  it("an append that waits past it fails with STATEMENT_TIMEOUT and writes nothing", async () => {
    const stream = `waits-${randomUUID()}`;
    const lock = await holdLogLock(db.url);
    try {
      const { error } = await failure(() => store.append([{ stream, expected: "any", events: [event()] }]));
      expect(error).toMatchObject({ kind: "STATEMENT_TIMEOUT" });
    } finally {
      await lock.release();
    }
    await expect(store.getStream(stream)).rejects.toMatchObject({ kind: "STREAM_NOT_FOUND" });
  });

  it("a statement an operator cancels is UNAVAILABLE (retry), not a timeout", async () => {
    const patient = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 1 }, migrate: false, statementTimeoutMs: 0 });
    try {
      const reading = failure(async () => {
        for await (const _ of patient.readAll({ direction: "forwards", filter: COSTLY_FILTER }));
      });
      // The read is many short statements (windowed scans): one found running may end before the
      // cancel lands, on a busy machine. Cancelled again while the read goes on, a bounded loop.
      let settled = false;
      void reading.then(() => (settled = true), () => (settled = true));
      await until(async () => (await activity.active(COSTLY_MARKER)).length > 0, "the costly statement to run", 5000);
      for (let tries = 0; tries < 100 && !settled; tries++) {
        for (const running of await activity.active(COSTLY_MARKER)) await activity.sql`select pg_cancel_backend(${running.pid})`;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect((await reading).error).toMatchObject({ kind: "UNAVAILABLE" });
    } finally {
      await patient.close();
    }
  });

  it("the LISTEN connection outlives it: idle, it runs no statement", async () => {
    const commits: bigint[] = [];
    const warnings: string[] = [];
    const log = { debug() {}, info() {}, warn: (m: string) => void warnings.push(m), error: (m: string) => void warnings.push(m) };
    const listening = await openStore({
      location: { kind: "postgres", url: db.url },
      migrate: false,
      statementTimeoutMs: 50,
      listenProbeIntervalMs: 60_000,
      log,
    });
    try {
      const stop = await listening.watch({ onCommit: (p) => void commits.push(p), onConnected() {} });
      const listener = async () =>
        (await activity.sql<{ pid: number }[]>`
          select pid from pg_stat_activity where datname = ${db.name} and query ilike 'listen%'`).map((r) => r.pid);
      const [pid] = await until(async () => (await listener()).length === 1 && (await listener()), "the LISTEN connection");
      // Idle for twenty timeouts.
      await new Promise((r) => setTimeout(r, 1000));
      const [result] = await store.append([{ stream: `heard-${randomUUID()}`, expected: "any", events: [event()] }]);
      await until(() => commits.includes(result.positions[0]), "the commit to be heard");
      expect(await listener()).toEqual([pid]);
      expect(warnings).toEqual([]);
      await stop();
    } finally {
      await listening.close();
    }
  });
});

describe("migrations run without it", () => {
  it("a server that waits for another's migration longer than the timeout still starts", async () => {
    const other = await createTestDatabase();
    const holder = postgres(other.url, { max: 1, onnotice: () => {} });
    try {
      // The advisory lock a migrating server holds (migrate.ts), held here for 600 ms.
      await holder`select pg_advisory_lock(7301984251)`;
      const unlock = new Promise((r) => setTimeout(r, 600)).then(() => holder`select pg_advisory_unlock(7301984251)`);
      const started = Date.now();
      const migrated = await openStore({ location: { kind: "postgres", url: other.url }, statementTimeoutMs: 100 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(500);
      await unlock;
      expect(await migrated.head()).toBe(0n);
      await migrated.close();
    } finally {
      await holder.end({ timeout: 1 });
      await other.drop();
    }
  });
});

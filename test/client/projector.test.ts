import { randomUUID } from "node:crypto";
import { Code } from "@connectrpc/connect";
import postgres from "postgres";
import {
  createEventStoreClient,
  createPostgresReadModel,
  insert,
  jsonData,
  LINK_EVENT_TYPE,
  ProjectionNotFoundError,
  Projector,
  ReadModelProjector,
  UnavailableError,
  update,
  type EventStoreClient,
  type RecordedEvent,
  type TableChange,
} from "../../src/client";
import { startClientServer } from "../support/client-server";
import type { TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

let db: TestDatabase;
let server: TestServer;
let client: EventStoreClient;
let close: () => Promise<void>;
let sql: postgres.Sql;

beforeAll(async () => {
  ({ db, server, client, close } = await startClientServer());
  sql = postgres(db.url, { onnotice: () => {} });
});

afterAll(async () => {
  await sql?.end();
  await close?.();
});

const unique = () => randomUUID().replaceAll("-", "").slice(0, 12);
const fast = { leaseTtlMs: 2000, controlIntervalMs: 100, persistEveryMs: 100 };

/**
 * The test's client, but every projection record write fails as if the process were killed right
 * before it: what a projector writes before its record (read model, emitted events) is written.
 */
function killedBeforeRecord(): EventStoreClient {
  const persist = async (): Promise<never> => {
    throw new Error("killed");
  };
  return { ...client, projections: { ...client.projections, persist } };
}

async function collect(events: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

async function deposit(category: string, account: number, amounts: number[]): Promise<void> {
  await client.append(`${category}-${account}`, amounts.map((amount) => ({ type: "Deposited", data: { amount } })));
}

/** Sums deposits per stream; `seen` holds each event id once, so a repeat would show. */
function summing(c: EventStoreClient, name: string, category: string, options = {}) {
  return new Projector(c, name, { ...fast, ...options })
    .fromAll({ category })
    .init(() => ({ total: 0, seen: [] as string[] }))
    .when<{ Deposited: { amount: number } }>({
      Deposited: (s, e) => ({ total: s.total + e.payload.amount, seen: [...s.seen, e.id] }),
    });
}

describe("a projector", () => {
  it("persists state and position in its record, and a new run carries on from there: nothing missed or repeated", async () => {
    const [category, name] = [`pa${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [1, 2, 3]);
    const first = summing(client, name, category);
    await first.run({ keepRunning: false });
    expect(first.state.total).toBe(6);
    const record = await client.projections.get(name);
    expect(record).toMatchObject({ status: "idle", stateContentType: "application/json" });
    expect(JSON.parse(new TextDecoder().decode(record.state)).total).toBe(6);
    const [last] = await collect(client.readStream(`${category}-1`, { direction: "backwards", limit: 1 }));
    expect(record.position).toBe(last.position);
    expect(record.lease).toBeUndefined(); // released on stop

    await deposit(category, 2, [10, 20]);
    const second = summing(client, name, category); // as a new process would
    await second.run({ keepRunning: false });
    expect(second.state.total).toBe(36);
    expect(new Set(second.state.seen).size).toBe(5);
    expect(second.state.seen).toHaveLength(5);
  });

  it("keeps running live, persisting every N events or T ms, and stops from here", async () => {
    const [category, name] = [`pb${unique()}`, `sum-${unique()}`];
    const projector = summing(client, name, category, { persistEveryEvents: 2, persistEveryMs: 60_000 });
    const running = projector.run();
    await until(async () => (await client.projections.get(name).catch(() => undefined))?.status === "running", "running");
    await deposit(category, 1, [5]);
    await until(() => projector.state.total === 5, "the live event");
    expect(JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state)).total).toBe(0); // 1 < N, T not yet
    await deposit(category, 1, [7]);
    await until(async () => JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state)).total === 12, "a persist after 2 events");
    await projector.stop();
    await running;
    expect((await client.projections.get(name)).status).toBe("idle");
  });

  it("persists after T ms when events stop coming", async () => {
    const [category, name] = [`pt${unique()}`, `sum-${unique()}`];
    const projector = summing(client, name, category, { persistEveryEvents: 1000, persistEveryMs: 1500 });
    const running = projector.run();
    await until(async () => (await client.projections.get(name).catch(() => undefined))?.status === "running", "running");
    await deposit(category, 1, [3]);
    await until(() => projector.state.total === 3, "the event");
    const handledAt = Date.now();
    // Handled within T of the start: not persisted with the event, but by the timer, with no event after it.
    expect(JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state)).total).toBe(0);
    await until(async () => JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state)).total === 3, "a timed persist");
    expect(Date.now() - handledAt).toBeLessThan(5000);
    await projector.stop();
    await running;
  });

  it("stops from a process that does not run it, by asking the runner through the server", async () => {
    const [category, name] = [`po${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [4]);
    const projector = summing(client, name, category);
    const running = projector.run();
    await until(() => projector.state.total === 4, "catch-up");
    await summing(client, name, category).stop(); // another instance, as in another process
    await running;
    expect((await client.projections.get(name)).status).toBe("idle");
  });

  it("obeys stop, reset and delete set from another client through the server", async () => {
    const [category, name] = [`pc${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [1, 2]);
    const projector = summing(client, name, category);
    const other = createEventStoreClient({ url: server.url });
    try {
      let running = projector.run();
      await until(() => projector.state.total === 3, "catch-up");
      // Stop: it persists, says idle and gives the lease up.
      await other.projections.updateStatus(name, "stopping");
      await running;
      expect(await other.projections.get(name)).toMatchObject({ status: "idle", lease: undefined });

      // Reset: it starts again from the initial state and folds everything again, once.
      running = projector.run();
      await until(() => projector.status === "running", "running again");
      const before = (await other.projections.get(name)).version;
      await other.projections.updateStatus(name, "resetting");
      await until(async () => {
        const r = await other.projections.get(name);
        return r.status === "running" && r.version > before + 1n && JSON.parse(new TextDecoder().decode(r.state)).total === 3;
      }, "a reset and a refold");
      expect(projector.state.seen).toHaveLength(2);
      await deposit(category, 1, [4]);
      await until(() => projector.state.total === 7, "live after the reset");

      // Delete: it deletes its record and stops.
      await other.projections.updateStatus(name, "deleting");
      await running;
      await expect(other.projections.get(name)).rejects.toBeInstanceOf(ProjectionNotFoundError);
    } finally {
      other.close();
    }
  });

  it("resets and deletes from its own process while running, and says when it has", async () => {
    const [category, name] = [`pr${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [1, 2]);
    const projector = summing(client, name, category);
    const running = projector.run();
    await until(() => projector.state.total === 3, "catch-up");
    const before = (await client.projections.get(name)).version;
    await projector.reset(); // resolves once the reset is done
    expect((await client.projections.get(name)).version).toBeGreaterThan(before);
    await until(() => projector.state.total === 3 && projector.status === "running", "the refold");
    expect(projector.state.seen).toHaveLength(2);
    await projector.delete();
    await running;
    await expect(client.projections.get(name)).rejects.toBeInstanceOf(ProjectionNotFoundError);
  });

  it("rides out a server restart: it keeps running, and handles every event once", async () => {
    const [category, name] = [`ps${unique()}`, `sum-${unique()}`];
    let restarting = await startTestServer({ kind: "postgres", url: db.url });
    const port = restarting.port;
    const own = createEventStoreClient({ url: restarting.url, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    try {
      await deposit(category, 1, [1, 2, 3]);
      // Its timed persist falls in the outage: kept, and written once the server is back.
      const projector = summing(own, name, category, { persistEveryEvents: 1000, persistEveryMs: 300 });
      const running = projector.run();
      await until(() => projector.state.total === 6, "catch-up");
      await restarting.stop();
      await deposit(category, 2, [10]); // written while its server is away
      restarting = await startTestServer({ kind: "postgres", url: db.url }, {}, { port });
      await deposit(category, 2, [20]);
      await until(async () => JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state)).total === 36, "the events after the restart");
      expect(projector.state.seen).toHaveLength(5);
      expect(new Set(projector.state.seen).size).toBe(5);
      await projector.stop();
      await running;
      expect((await client.projections.get(name)).status).toBe("idle");
    } finally {
      own.close();
      await restarting.stop();
    }
  });

  it("keeps what a persist could not write while the server was away, and writes it with the next", async () => {
    const [category, name] = [`pu${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [1, 2, 3]);
    let refusals = 2;
    const flaky = {
      ...client,
      projections: {
        ...client.projections,
        persist: (...args: Parameters<EventStoreClient["projections"]["persist"]>) =>
          refusals-- > 0
            ? Promise.reject(new UnavailableError("The database is unavailable; retry later", Code.Unavailable, "UNAVAILABLE", {}))
            : client.projections.persist(...args),
      },
    } as EventStoreClient;
    const projector = summing(flaky, name, category, { persistEveryEvents: 1 });
    await projector.run({ keepRunning: false });
    expect(refusals).toBeLessThan(0);
    const stored = JSON.parse(new TextDecoder().decode((await client.projections.get(name)).state));
    expect(stored.total).toBe(6);
    expect(stored.seen).toHaveLength(3);
  });

  it("emits to its own stream and links into another, and after a crash re-emits nothing twice", async () => {
    const [category, name] = [`pe${unique()}`, `big-${unique()}`];
    await deposit(category, 1, [5, 5000]);
    await deposit(category, 2, [7000]);
    const build = (c: EventStoreClient) =>
      new Projector(c, name, { ...fast, persistEveryEvents: 1000 })
        .fromAll({ category })
        .init(() => 0)
        .when<{ Deposited: { amount: number } }>({
          Deposited: (n, e, { emit, linkTo }) => {
            if (e.payload.amount < 1000) return n;
            emit({ type: "LargeDeposit", data: { stream: e.stream, amount: e.payload.amount } });
            linkTo(`${name}-links`, e);
            return n + 1;
          },
        });
    // The first run dies after writing its emits and links but before its record: the record
    // refuses its persist (as if the process had been killed there).
    await expect(build(killedBeforeRecord()).run({ keepRunning: false })).rejects.toThrow("killed");
    await client.projections.releaseLease(name, (await client.projections.get(name)).lease!.holder);
    expect(await collect(client.readStream(name))).toHaveLength(2);

    const projector = build(client);
    await projector.run({ keepRunning: false });
    expect(projector.state).toBe(2);
    const emitted = await collect(client.readStream(name));
    expect(emitted.map((e) => [e.type, jsonData(e)])).toEqual([
      ["LargeDeposit", { stream: `${category}-1`, amount: 5000 }],
      ["LargeDeposit", { stream: `${category}-2`, amount: 7000 }],
    ]);
    const links = await collect(client.readStream(`${name}-links`));
    expect(links.map((e) => e.type)).toEqual([LINK_EVENT_TYPE, LINK_EVENT_TYPE]);
    const resolved = await collect(client.readStream(`${name}-links`, { resolveLinks: true }));
    expect(resolved.map((e) => [e.stream, e.revision])).toEqual([
      [`${category}-1`, 1n],
      [`${category}-2`, 0n],
    ]);
  });

  it("waits while another runner holds the lease, and takes over when it expires", async () => {
    const [category, name] = [`pl${unique()}`, `sum-${unique()}`];
    await deposit(category, 1, [1]);
    // Another runner holds the lease and does not renew it (it died).
    await client.projections.create(name, new TextEncoder().encode(JSON.stringify({ total: 0, seen: [] })));
    await client.projections.acquireLease(name, "dead-runner", 1500);
    const waits: string[] = [];
    const projector = summing(client, name, category, { onWaiting: (holder: string) => waits.push(holder) });
    const started = Date.now();
    await projector.run({ keepRunning: false });
    expect(waits[0]).toBe("dead-runner");
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(projector.state.total).toBe(1);
  });
});

describe("a read-model projector", () => {
  const readModel = (table: string) =>
    createPostgresReadModel({ sql, table, columns: "id text primary key, total numeric not null, deposits int not null" });

  function totals(c: EventStoreClient, name: string, table: string, category: string) {
    return new ReadModelProjector<Record<string, { total: number; deposits: number }>, TableChange>(c, name, readModel(table), {
      ...fast,
      persistEveryEvents: 1000,
    })
      .fromAll({ category })
      .init(() => ({}) as Record<string, { total: number; deposits: number }>)
      .when<{ Opened: unknown; Deposited: { amount: number } }>({
        Opened: (s, e, { stack }) => {
          stack(insert({ id: e.stream, total: 0, deposits: 0 }));
          return { ...s, [e.stream]: { total: 0, deposits: 0 } };
        },
        Deposited: (s, e, { stack }) => {
          const row = { total: s[e.stream].total + e.payload.amount, deposits: s[e.stream].deposits + 1 };
          stack(update(row, { id: e.stream }));
          return { ...s, [e.stream]: row };
        },
      });
  }

  it("creates its table, fills it, and after a crash between the table and the record applies no event twice", async () => {
    const [category, name, table] = [`rm${unique()}`, `rm-${unique()}`, `totals_${unique()}`];
    await client.append(`${category}-1`, [{ type: "Opened" }, { type: "Deposited", data: { amount: 5 } }]);
    await client.append(`${category}-2`, [{ type: "Opened" }]);
    // The table and its position are written, the record is not: as if killed between the two.
    await expect(totals(killedBeforeRecord(), name, table, category).run({ keepRunning: false })).rejects.toThrow("killed");
    await client.projections.releaseLease(name, (await client.projections.get(name)).lease!.holder);
    expect((await client.projections.get(name)).position).toBe(0n);
    await client.append(`${category}-2`, [{ type: "Deposited", data: { amount: 7 } }]);

    // The next run handles every event again from the record's position: the table's inserts
    // would fail on their primary key if they were applied again.
    await totals(client, name, table, category).run({ keepRunning: false });
    const rows = await sql`select id, total::int, deposits from ${sql(table)} order by id`;
    expect(rows.map((r) => ({ ...r }))).toEqual([
      { id: `${category}-1`, total: 5, deposits: 1 },
      { id: `${category}-2`, total: 7, deposits: 1 },
    ]);
  });

  it("refuses changes from a runner that saw the table before a reset, even at the position it was at", async () => {
    const table = `totals_${unique()}`;
    const rm = readModel(table);
    await rm.init();
    const before = await rm.persist([insert({ id: "a", total: 1, deposits: 1 })], 5n, undefined);
    expect(before?.position).toBe(5n);
    // Another runner resets it and rebuilds it to the same position.
    await rm.reset();
    const rebuilt = await rm.persist([insert({ id: "b", total: 2, deposits: 1 })], 5n, undefined);
    expect(rebuilt?.token).not.toBe(before?.token);
    // The runner that saw it before the reset is refused, and writes nothing.
    expect(await rm.persist([insert({ id: "stale", total: 9, deposits: 9 })], 7n, before)).toBeUndefined();
    expect(await rm.persist([update({ total: 3 }, { id: "b" })], 7n, rebuilt)).toEqual({ position: 7n, token: rebuilt!.token });
    expect(await rm.appliedPosition()).toEqual({ position: 7n, token: rebuilt!.token });
    const rows = await sql`select id, total::int from ${sql(table)} order by id`;
    expect(rows.map((r) => ({ ...r }))).toEqual([{ id: "b", total: 3 }]);
  });

  it("resets its table on reset and drops it on delete", async () => {
    const [category, name, table] = [`rr${unique()}`, `rm-${unique()}`, `totals_${unique()}`];
    await client.append(`${category}-1`, [{ type: "Opened" }, { type: "Deposited", data: { amount: 5 } }]);
    const projector = totals(client, name, table, category);
    await projector.run({ keepRunning: false });
    expect((await sql`select count(*)::int as n from ${sql(table)}`)[0].n).toBe(1);
    await projector.reset();
    expect((await sql`select count(*)::int as n from ${sql(table)}`)[0].n).toBe(0);
    expect((await client.projections.get(name)).position).toBe(0n);
    await projector.run({ keepRunning: false });
    expect((await sql`select total::int from ${sql(table)}`)[0].total).toBe(5);
    await projector.delete();
    expect((await sql`select to_regclass(${table}) as t`)[0].t).toBeNull();
    await expect(client.projections.get(name)).rejects.toBeInstanceOf(ProjectionNotFoundError);
  });
});

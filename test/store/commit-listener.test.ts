import { randomUUID } from "node:crypto";
import { createPostgresStore } from "../../src/store/postgres/create-postgres-store";
import { migrate } from "../../src/store/postgres/migrate";
import { connect } from "../../src/store/postgres/sql";
import type { EventStore } from "../../src/store";
import { FreezingProxy } from "../support/freezing-proxy";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { event } from "./store-contract";

describe("the LISTEN connection", () => {
  let db: TestDatabase;
  let proxy: FreezingProxy;
  let store: EventStore;
  // Another server's store: its commits reach `store` only as notifications.
  let other: EventStore;
  let stopWatching: () => Promise<void>;
  const commits: bigint[] = [];
  let connects = 0;

  beforeAll(async () => {
    db = await createTestDatabase();
    const url = new URL(db.url);
    proxy = new FreezingProxy({ host: url.hostname, port: Number(url.port || 5432) });
    await proxy.start();
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    const sql = connect({ url: db.url });
    await migrate(sql);
    store = createPostgresStore({
      sql,
      openListenConnection: (handlers) => connect({ url: viaProxy.toString(), max: 1, ...handlers }),
      listenProbeIntervalMs: 200,
    });
    other = createPostgresStore({ sql: connect({ url: db.url }) });
    stopWatching = await store.watch({ onCommit: (p) => commits.push(p), onConnected: () => connects++ });
  });
  afterAll(async () => {
    await stopWatching?.();
    await store?.close();
    await other?.close();
    await proxy?.stop();
    await db?.drop();
  });

  const appendAndHear = async () => {
    const [r] = await other.append([{ stream: `l-${randomUUID()}`, expected: "any", events: [event()] }]);
    const position = r.positions[0];
    const deadline = Date.now() + 3000;
    while (!commits.includes(position) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    return commits.includes(position);
  };

  it("hears another server's commits as notifications", async () => {
    expect(connects).toBe(1);
    expect(await appendAndHear()).toBe(true);
  });

  it("a connection that goes silent is found by its probe and replaced, and the watcher re-reads", async () => {
    proxy.freezeOpenConnections();
    const before = connects;
    const deadline = Date.now() + 5000;
    while (connects === before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    expect(connects).toBe(before + 1);
    expect(await appendAndHear()).toBe(true);
  });
});

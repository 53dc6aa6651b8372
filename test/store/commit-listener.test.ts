import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { randomUUID } from "node:crypto";
import { createPostgresStore } from "../../src/store/postgres/create-postgres-store";
import { migrate } from "../../src/store/postgres/migrate";
import { connect } from "../../src/store/postgres/sql";
import type { EventStore } from "../../src/store";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { event } from "./store-contract";

/** A TCP proxy whose open connections can be frozen: bytes stop, sockets stay open. */
class FreezingProxy {
  private server: Server;
  private frozen = new Set<Socket>();
  private live = new Set<[Socket, Socket]>();
  port = 0;
  constructor(private target: { host: string; port: number }) {
    this.server = createServer((client) => {
      const upstream = netConnect(target.port, target.host);
      client.pipe(upstream).pipe(client);
      const pair: [Socket, Socket] = [client, upstream];
      this.live.add(pair);
      const drop = () => {
        this.live.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
  }
  async start() {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  /** Every connection open now goes silent, as behind a dropped route. */
  freezeOpenConnections() {
    for (const [client, upstream] of this.live) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
      this.frozen.add(client).add(upstream);
    }
    this.live.clear();
  }
  async stop() {
    for (const s of this.frozen) s.destroy();
    for (const [a, b] of this.live) (a.destroy(), b.destroy());
    await new Promise((r) => this.server.close(r));
  }
}

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

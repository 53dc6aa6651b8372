import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService, type SubscribeResponse } from "../../gen/eventstore/v1/eventstore_pb";
import { FreezingProxy } from "../support/freezing-proxy";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(20);
  return condition();
}

/** Follows a subscription in the background, keeping every message and how it ended. */
function follow(client: Client<typeof EventStoreService>, request: Parameters<Client<typeof EventStoreService>["subscribe"]>[0]) {
  const abort = new AbortController();
  const seen: SubscribeResponse[] = [];
  const state: { error?: ConnectError; ended: boolean } = { ended: false };
  const done = (async () => {
    try {
      for await (const m of client.subscribe(request, { signal: abort.signal })) seen.push(m);
    } catch (e) {
      state.error = ConnectError.from(e);
    } finally {
      state.ended = true;
    }
  })();
  return { seen, state, done, cancel: () => abort.abort() };
}

const caughtUp = (seen: SubscribeResponse[]) => seen.some((m) => m.message.case === "caughtUp");
const eventTypes = (seen: SubscribeResponse[]) => seen.flatMap((m) => (m.message.case === "events" ? m.message.value.events.map((e) => e.type) : []));

describe("subscriptions and the connection they live on", () => {
  let db: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({ kind: "postgres", url: db.url }, {}, { pingIntervalMs: 200 });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it("a peer that stops answering HTTP/2 pings is dropped, and its subscription freed", async () => {
    const proxy = new FreezingProxy({ host: "127.0.0.1", port: server.port });
    await proxy.start();
    try {
      const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: `http://127.0.0.1:${proxy.port}` }));
      const sub = follow(client, {});
      expect(await until(() => caughtUp(sub.seen), 5000)).toBe(true);
      expect(server.liveSubscribers()).toBe(1);
      proxy.freezeOpenConnections();
      // Two unanswered ping intervals, with room for a loaded machine.
      expect(await until(() => server.liveSubscribers() === 0, 5000)).toBe(true);
      sub.cancel();
    } finally {
      await proxy.stop();
    }
  });

  it("a cancelled subscription is freed at once", async () => {
    const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
    const sub = follow(client, {});
    expect(await until(() => caughtUp(sub.seen), 5000)).toBe(true);
    expect(server.liveSubscribers()).toBe(1);
    sub.cancel();
    await sub.done;
    expect(await until(() => server.liveSubscribers() === 0, 2000)).toBe(true);
  });
});

describe("when the server stops", () => {
  it("open subscriptions end with UNAVAILABLE", async () => {
    const db = await createTestDatabase();
    const server = await startTestServer({ kind: "postgres", url: db.url });
    try {
      const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
      const sub = follow(client, { stream: "stopping-1" });
      expect(await until(() => caughtUp(sub.seen), 5000)).toBe(true);
      await server.stop();
      await sub.done;
      expect(sub.state.error?.code).toBe(Code.Unavailable);
    } finally {
      await server.stop();
      await db.drop();
    }
  });
});

describe("on the embedded database", () => {
  it("subscribers get history and then live events: the process wakes them after its commits", async () => {
    const server = await startTestServer({ kind: "embedded", dataDir: "memory" });
    try {
      const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
      const s = `embedded-${randomUUID()}`;
      await client.append({ stream: s, events: [{ type: "Before" }] });
      const all = follow(client, {});
      const one = follow(client, { stream: s });
      expect(await until(() => caughtUp(all.seen) && caughtUp(one.seen), 10_000)).toBe(true);
      await client.append({ stream: s, events: [{ type: "After1" }, { type: "After2" }] });
      await client.append({ stream: `other-${randomUUID()}`, events: [{ type: "Elsewhere" }] });
      // The poll is a second; live delivery must not wait for it.
      expect(await until(() => eventTypes(all.seen).length === 4 && eventTypes(one.seen).length === 3, 500)).toBe(true);
      expect(eventTypes(all.seen)).toEqual(["Before", "After1", "After2", "Elsewhere"]);
      expect(eventTypes(one.seen)).toEqual(["Before", "After1", "After2"]);
      all.cancel();
      one.cancel();
    } finally {
      await server.stop();
    }
  });
});

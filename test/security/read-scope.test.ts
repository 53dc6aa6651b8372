import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEventStoreClient,
  linkTo,
  LINK_EVENT_TYPE,
  PermissionDeniedError,
  type EventStoreClient,
  type RecordedEvent,
} from "../../src/client";
import * as grpc from "@grpc/grpc-js";
import { writeAuthFile } from "../support/auth-file";
import { createGrpcJsClient } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

/**
 * A caller that may read one category learns nothing of the rest of the log: a selection that
 * could hold another stream's events is refused outright (rather than filtered, which would let
 * a count or a page's timing tell what was left out), and a link into a stream it may not read
 * stays a link.
 */

let dir: string;
let db: TestDatabase;
let server: TestServer;
let admin: EventStoreClient;
let orders: EventStoreClient;
let keys: Record<string, string>;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-scope-"));
  keys = writeAuthFile(join(dir, "auth.yaml"), {
    principals: { admin: {}, orders: { roles: ["order-reader"] } },
    rules: [
      { principals: ["admin"], permissions: ["admin"] },
      { roles: ["order-reader"], permissions: ["read", "subscribe"], categories: ["order"] },
    ],
  });
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, { authFile: join(dir, "auth.yaml") });
  admin = createEventStoreClient({ url: server.url, token: keys.admin });
  orders = createEventStoreClient({ url: server.url, token: keys.orders });
  await admin.append("order-1", [{ type: "OrderPlaced", data: { total: 1 } }]);
  const secret = await admin.append("secret-1", [{ type: "Salary", data: { amount: 100 } }]);
  await admin.append("order-2", [{ type: "OrderPlaced", data: { total: 2 } }, linkTo({ stream: "secret-1", revision: secret.revision })]);
  await admin.append("ordinal-1", [{ type: "Counted", data: {} }]);
});

afterAll(async () => {
  admin?.close();
  orders?.close();
  await server?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

async function collect(events: AsyncIterable<RecordedEvent>, count = Infinity): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) {
    all.push(e);
    if (all.length >= count) break;
  }
  return all;
}

async function refusal(work: () => Promise<unknown>): Promise<PermissionDeniedError> {
  const e = await work().then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(PermissionDeniedError);
  return e as PermissionDeniedError;
}

describe("reading the whole log", () => {
  test("is refused without a filter, with a type filter, and with a prefix wider than the category", async () => {
    for (const filter of [undefined, { eventTypes: ["OrderPlaced"] }, { streamPrefix: "ord" }, { category: "secret" }]) {
      const e = await refusal(() => collect(orders.readAll({ filter })));
      // It names what the caller asked for and the permission, nothing of what the log holds.
      expect(e.message).toContain("read");
      expect(e.message).not.toMatch(/secret-1|ordinal|Salary/);
    }
  });

  test("by the category it may read answers that category's events only, with links unresolved into other streams", async () => {
    const events = await collect(orders.readAll({ filter: { category: "order" }, resolveLinks: true }));
    expect(events.map((e) => [e.stream, e.type])).toEqual([
      ["order-1", "OrderPlaced"],
      ["order-2", "OrderPlaced"],
      ["order-2", LINK_EVENT_TYPE],
    ]);
    // The same read by the admin resolves the link into the salary event.
    const all = await collect(admin.readAll({ filter: { category: "order" }, resolveLinks: true }));
    expect(all.map((e) => e.type)).toEqual(["OrderPlaced", "OrderPlaced", "Salary"]);
  });

  test("by a prefix inside the category is allowed", async () => {
    const events = await collect(orders.readAll({ filter: { streamPrefix: "order-2" } }));
    expect(events.map((e) => e.stream)).toEqual(["order-2", "order-2"]);
  });
});

describe("reading a stream", () => {
  test("of another category is refused; a link into it is not resolved", async () => {
    await refusal(() => collect(orders.readStream("secret-1")));
    const events = await collect(orders.readStream("order-2", { resolveLinks: true }));
    expect(events.map((e) => e.type)).toEqual(["OrderPlaced", LINK_EVENT_TYPE]);
    expect(events.some((e) => e.stream === "secret-1")).toBe(false);
  });
});

describe("subscribing", () => {
  test("to the whole log, to another category or to another stream is refused before any message", async () => {
    for (const options of [{}, { filter: { category: "secret" } }, { stream: "secret-1" }]) {
      await refusal(() => collect(orders.subscribe({ ...options, from: "start" }), 1));
    }
  });

  test("to the category delivers its events, links unresolved into other streams", async () => {
    const events = await collect(orders.subscribe({ filter: { category: "order" }, from: "start", resolveLinks: true }), 3);
    expect(events.map((e) => [e.stream, e.type])).toEqual([
      ["order-1", "OrderPlaced"],
      ["order-2", "OrderPlaced"],
      ["order-2", LINK_EVENT_TYPE],
    ]);
  });
});

describe("listing streams", () => {
  test("is refused for every name and answered for the category's prefix", async () => {
    const client = createGrpcJsClient(`127.0.0.1:${server.port}`);
    const metadata = new grpc.Metadata();
    metadata.set("authorization", `Bearer ${keys.orders}`);
    const list = (prefix: string) =>
      new Promise<{ streams: { name: string }[] }>((resolve, reject) =>
        client.listStreams({ prefix }, metadata, (e: Error | null, r: { streams: { name: string }[] }) => (e ? reject(e) : resolve(r))),
      );
    try {
      await expect(list("")).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });
      expect((await list("order-")).streams.map((s) => s.name)).toEqual(["order-1", "order-2"]);
    } finally {
      client.close();
    }
  });
});

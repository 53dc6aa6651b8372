import { randomUUID } from "node:crypto";
import {
  createEventStoreClient,
  InvalidArgumentError,
  jsonData,
  StreamNotFoundError,
  StreamTombstonedError,
  WrongExpectedRevisionError,
  type EventStoreClient,
  type RecordedEvent,
} from "../../src/client";
import { openStore, type EventStore } from "../../src/store";
import { startClientServer } from "../support/client-server";
import type { TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

let db: TestDatabase;
let server: TestServer;
let client: EventStoreClient;
let close: () => Promise<void>;

beforeAll(async () => void ({ db, server, client, close } = await startClientServer()));

afterAll(() => close?.());

const name = (prefix: string) => `${prefix}_${randomUUID().replaceAll("-", "")}`;

async function collect(events: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

/**
 * A server of its own on the database that can be stopped and started again on the same port,
 * and a store beside it to write while no server runs; `close` releases all of it.
 */
async function restartable() {
  let running = await startTestServer({ kind: "postgres", url: db.url });
  const port = running.port;
  const url = running.url;
  const store: EventStore = await openStore({ location: { kind: "postgres", url: db.url }, migrate: false });
  return {
    url,
    stop: () => running.stop(),
    start: async () => void (running = await startTestServer({ kind: "postgres", url: db.url }, {}, { port })),
    /** One event of `type` in `stream`, written straight through the store. */
    write: (stream: string, type: string) =>
      store.append([{ stream, expected: "any", events: [{ id: randomUUID(), type, contentType: "application/json", data: Buffer.from("{}"), metadata: {} }] }]),
    close: async () => {
      await running.stop().catch(() => {});
      await store.close();
    },
  };
}

describe("createEventStoreClient", () => {
  it("appends JSON and bytes with metadata and reads them back typed, forwards, backwards and from the whole log", async () => {
    const stream = name("order");
    await client.append(`${stream}x`, [{ type: "Elsewhere" }]); // a name the prefix matches, the stream does not
    await client.append(name("other"), [{ type: "Elsewhere" }]);
    const id = randomUUID();
    const first = await client.append(stream, [{ type: "Placed", data: { total: 12.5 }, metadata: { correlationId: "c-1" }, id }], {
      expectedRevision: "no_stream",
    });
    expect(first).toMatchObject({ stream, revision: 0n, eventIds: [id] });
    expect(first.committedAt).toBeInstanceOf(Date);
    const second = await client.append(stream, [{ type: "Blob", data: new Uint8Array([1, 2, 3]) }, { type: "Shipped" }], { expectedRevision: 0n });
    expect(second.revision).toBe(2n);
    expect(second.positions).toEqual([first.positions[0] + 1n, first.positions[0] + 2n]);

    const read = await collect(client.readStream(stream));
    expect(read.map((e) => [e.type, e.revision, e.contentType])).toEqual([
      ["Placed", 0n, "application/json"],
      ["Blob", 1n, "application/octet-stream"],
      ["Shipped", 2n, "application/json"],
    ]);
    expect(jsonData(read[0])).toEqual({ total: 12.5 });
    expect(read[0]).toMatchObject({ id, stream, metadata: { correlationId: "c-1" }, position: first.positions[0] });
    expect([...read[1].data]).toEqual([1, 2, 3]);
    expect(read[0].storedAt.getTime()).toBe(first.committedAt.getTime());

    const backwards = await collect(client.readStream(stream, { direction: "backwards", limit: 2 }));
    expect(backwards.map((e) => e.revision)).toEqual([2n, 1n]);
    const byPrefix = await collect(client.readAll({ filter: { streamPrefix: stream } }));
    expect(byPrefix.map((e) => e.type)).toEqual(["Elsewhere", "Placed", "Blob", "Shipped"]);
    const byType = await collect(client.readAll({ filter: { streamPrefix: stream, eventTypes: ["Blob", "Shipped"] } }));
    expect(byType.map((e) => e.id)).toEqual(read.slice(1).map((e) => e.id));
    expect(await client.getStream(stream)).toMatchObject({ name: stream, revision: 2n, deleted: false, tombstoned: false });
  });

  it("turns failures into typed errors carrying the server's facts", async () => {
    const stream = name("account");
    await client.append(stream, [{ type: "Opened" }]);
    const conflict = await client.append(stream, [{ type: "Late" }], { expectedRevision: 5n }).catch((e) => e);
    expect(conflict).toBeInstanceOf(WrongExpectedRevisionError);
    expect(conflict).toMatchObject({ stream, expectedRevision: "5", actualRevision: 0n, reason: "WRONG_EXPECTED_REVISION" });

    const missing = await client.getStream(name("nothing")).catch((e) => e);
    expect(missing).toBeInstanceOf(StreamNotFoundError);
    const bad = await client.append(stream, [{ type: "" }]).catch((e) => e);
    expect(bad).toBeInstanceOf(InvalidArgumentError);
    expect(bad.field).toBe("events[0].type");

    await client.tombstoneStream(stream);
    expect(await client.append(stream, [{ type: "After" }]).catch((e) => e)).toBeInstanceOf(StreamTombstonedError);
    // Errors from reads are typed too.
    const badRead = await collect(client.readStream("")).catch((e) => e);
    expect(badRead).toBeInstanceOf(InvalidArgumentError);
  });

  it("speaks the Connect protocol over HTTP/1.1 as well", async () => {
    const http1 = createEventStoreClient({ url: server.url, protocol: "connect" });
    try {
      const stream = name("http1");
      await http1.append(stream, [{ type: "A", data: { n: 1 } }]);
      expect((await collect(http1.readStream(stream))).map((e) => jsonData(e))).toEqual([{ n: 1 }]);
      expect(await http1.append(stream, [{ type: "B" }], { expectedRevision: "no_stream" }).catch((e) => e)).toBeInstanceOf(WrongExpectedRevisionError);
    } finally {
      http1.close();
    }
  });
});

describe("subscribe", () => {
  it("delivers the history, then live events; breaking out of the loop ends the call", async () => {
    const stream = name("live");
    await client.append(stream, [{ type: "A" }, { type: "B" }]);
    const caughtUp: bigint[] = [];
    const seen: string[] = [];
    // The loop pulls: the caught-up marker is read when the loop asks for the event after B.
    for await (const e of client.subscribe({ stream, onCaughtUp: (p) => caughtUp.push(p) })) {
      seen.push(e.type);
      if (seen.length === 2) await client.append(stream, [{ type: "C" }]);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual(["A", "B", "C"]);
    expect(caughtUp.length).toBe(1);
    await until(() => server.liveSubscribers() === 0, "the server to drop the subscription", 5000);
  });

  it("resumes after a server restart right after the last event it delivered: none missed, none repeated", async () => {
    const restarting = await restartable();
    const resuming = createEventStoreClient({ url: restarting.url, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    const category = name("resume");
    const write = (from: number, to: number) =>
      Promise.all(Array.from({ length: to - from }, (_, k) => restarting.write(`${category}-${from + k}`, `E${from + k}`)));
    try {
      await write(0, 5);
      const seen: string[] = [];
      const reconnects: string[] = [];
      const abort = new AbortController();
      const consuming = (async () => {
        for await (const e of resuming.subscribe({ filter: { category }, signal: abort.signal, onReconnect: (err) => reconnects.push(err.code.toString()) })) {
          seen.push(e.type);
        }
      })();
      let failed: unknown;
      consuming.catch((e) => (failed = e));
      await until(() => seen.length === 5 || failed !== undefined, "the history", 10_000).catch((e) => {
        throw new Error(`${e.message}: ${seen.length} seen, reconnects ${reconnects.join(",")}`);
      });
      if (failed) throw failed;
      await restarting.stop();
      await write(5, 10); // while no server runs
      await restarting.start();
      await until(() => seen.length >= 10, "the events written while the server was down", 15_000);
      await write(10, 12);
      await until(() => seen.length >= 12, "live events after the restart", 10_000);
      abort.abort();
      await consuming;
      expect(reconnects.length).toBeGreaterThanOrEqual(1);
      expect([...seen].sort()).toEqual(Array.from({ length: 12 }, (_, i) => `E${i}`).sort());
      expect(new Set(seen).size).toBe(12);
    } finally {
      resuming.close();
      await restarting.close();
    }
  }, 60_000);

  it("a named subscription starts right after its committed checkpoint", async () => {
    const stream = name("durable");
    const subscription = name("projector");
    const written = await client.append(stream, [{ type: "A" }, { type: "B" }, { type: "C" }]);
    expect(await client.getCheckpoint(subscription)).toBeUndefined();
    await client.commitCheckpoint(subscription, written.positions[1]);
    expect(await client.getCheckpoint(subscription)).toBe(written.positions[1]);
    const seen: string[] = [];
    for await (const e of client.subscribe({ stream, name: subscription, from: "start" })) {
      seen.push(e.type);
      if (e.position === written.positions[2]) break;
    }
    // A and B were processed before: only C comes.
    expect(seen).toEqual(["C"]);
    // The committed checkpoint wins over the start asked for, whatever it is.
    const again: string[] = [];
    for await (const e of client.subscribe({ stream, name: subscription, from: { afterPosition: 0n } })) {
      again.push(e.type);
      if (e.position === written.positions[2]) break;
    }
    expect(again).toEqual(["C"]);
  });

  it("close() ends the client's subscriptions instead of letting them reconnect", async () => {
    const closing = createEventStoreClient({ url: server.url, reconnect: { initialDelayMs: 10, maxDelayMs: 10 } });
    const stream = name("closing");
    await closing.append(stream, [{ type: "A" }]);
    const seen: string[] = [];
    const consuming = (async () => {
      for await (const e of closing.subscribe({ stream })) seen.push(e.type);
    })();
    await until(() => seen.length === 1, "the first event", 5000);
    closing.close();
    await consuming; // ends, without an error
    expect(seen).toEqual(["A"]);
    await until(() => server.liveSubscribers() === 0, "the server to drop the subscription", 5000);
  });

  it("from the end, a resumed subscription still gets what was written while it was away", async () => {
    const restarting = await restartable();
    const resuming = createEventStoreClient({ url: restarting.url, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
    const stream = name("fromend");
    const one = (type: string) => restarting.write(stream, type);
    try {
      await one("Before");
      let live = false;
      const seen: string[] = [];
      const abort = new AbortController();
      const consuming = (async () => {
        for await (const e of resuming.subscribe({ stream, from: "end", signal: abort.signal, onCaughtUp: () => (live = true) })) seen.push(e.type);
      })();
      await until(() => live, "caught-up", 10_000);
      await restarting.stop();
      await one("WhileAway");
      await restarting.start();
      await until(() => seen.length >= 1, "the event written while away", 15_000);
      await one("Later");
      await until(() => seen.length >= 2, "the live event", 10_000);
      abort.abort();
      await consuming;
      expect(seen).toEqual(["WhileAway", "Later"]);
    } finally {
      resuming.close();
      await restarting.close();
    }
  }, 60_000);
});

import { randomUUID } from "node:crypto";
import { eventBytes, type RecordedEvent } from "../../src/domain";
import { LiveQueue } from "../../src/subscriptions/live-queue";
import { FreezingProxy } from "../support/freezing-proxy";
import { createGrpcJsClient, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// A live subscriber's buffer is bounded by the bytes of whole events, metadata included: 900
// events of 1 MiB of metadata and no data once held 1.27 GB for one subscriber that stopped
// reading, past its 16 MiB limit, because only data was counted.

const MiB = 1024 * 1024;
const BUFFER_BYTES = 16 * MiB;
const METADATA = { blob: "m".repeat(MiB - 1000) };

function event(position: number, measured: boolean): RecordedEvent {
  const e: RecordedEvent = {
    id: randomUUID(),
    type: "Big",
    contentType: "application/json",
    data: new Uint8Array(0),
    metadata: METADATA,
    stream: "big-1",
    revision: BigInt(position - 1),
    position: BigInt(position),
    storedAt: new Date(),
  };
  // As the store reads it: measured once; or not, and measured by the queue.
  return measured ? { ...e, bytes: eventBytes(e.stream, e) } : e;
}

describe("a live subscriber's buffer", () => {
  it.each([
    ["measured by the store", true],
    ["measured by the queue", false],
  ])("overflows once its events' bytes, metadata included, pass the limit (%s)", (_, measured) => {
    let overflowedAt: number | undefined;
    let position = 0;
    const queue = new LiveQueue(0n, () => true, { maxEvents: 10_000, maxBytes: BUFFER_BYTES }, () => (overflowedAt ??= position));
    while (overflowedAt === undefined && position < 100) {
      position++;
      queue.deliver([event(position, measured)], BigInt(position));
    }
    // Each event counts about 1 MiB: the 17th passes 16 MiB. Counting data alone, never.
    expect(overflowedAt).toBe(17);
  });
});

describe("a subscriber that stops reading events of 1 MiB metadata", () => {
  let db: TestDatabase;
  let server: TestServer;
  let proxy: FreezingProxy;

  beforeAll(async () => {
    db = await createTestDatabase();
    // No pings: the sleeper's connection stays open however long it is silent, so that only
    // its buffer can take it out of live delivery.
    server = await startTestServer({ kind: "postgres", url: db.url }, {}, { pingIntervalMs: 0 });
    proxy = new FreezingProxy({ host: "127.0.0.1", port: server.port });
    await proxy.start();
  });
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
    await db?.drop();
  });

  it("is dropped from live delivery once its buffer would hold more than the buffer's bytes, while a reader keeps up", async () => {
    // The sleeper reads through a proxy that then stops reading: its TCP window and the server's
    // socket fill, the server's writes to it wait, and its events wait in its buffer.
    const sleeper = createGrpcJsClient(`127.0.0.1:${proxy.port}`);
    const reader = createGrpcJsClient(`127.0.0.1:${server.port}`);
    const writer = createGrpcJsClient(`127.0.0.1:${server.port}`);
    const request = { stream: "big-1", startPoint: "START_POINT_END", heartbeatIntervalMs: 100_000 };
    const sleeping = sleeper.subscribe(request);
    sleeping.on("data", () => {});
    sleeping.on("error", () => {});
    let received = 0;
    const reading = reader.subscribe(request);
    reading.on("data", (m: { events?: { events: unknown[] } }) => (received += m.events?.events.length ?? 0));
    reading.on("error", () => {});
    try {
      await until(() => server.liveSubscribers() === 2, "both subscribers live");
      proxy.freezeOpenConnections();
      const EVENTS = 64;
      for (let i = 0; i < EVENTS; i++) {
        const metadata = { fields: { blob: { stringValue: METADATA.blob } } };
        await unary(writer, "append", { stream: "big-1", events: [{ type: "Big", metadata }] });
      }
      await until(() => received === EVENTS, "the reader has every event", 30_000);
      // 64 MiB were appended, a few of them in flight to the sleeper: its buffer passed 16 MiB
      // and was dropped (it would read from storage, fell behind, once it read again). Counting
      // data alone, it held every one of them.
      await until(() => server.liveSubscribers() === 1, "the sleeper dropped from live delivery", 10_000);
    } finally {
      sleeping.cancel();
      reading.cancel();
      for (const c of [sleeper, reader, writer]) c.close();
    }
  }, 60_000);
});

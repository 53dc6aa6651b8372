import { randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// One consumer that stops reading must cost the server a bounded buffer, not the whole feed:
// the others keep their pace, the server's memory does not follow the log, and the sleeper,
// once it reads again, is served from storage (fell behind) with nothing lost or repeated.

const EVENTS = 100_000;
const WARM_UP_EVENTS = 10_000;
const BATCH = 1000;
const EVENT_BYTES = 1024;
const STREAMS = 10;
const MiB = 1024 * 1024;
/** How long after the last append a reading subscriber may take to have every event. */
const LAG_MS = 5000;
const RSS_GROWTH_LIMIT = 150 * MiB;

interface Written {
  ids: string[];
  positions: bigint[];
}

describe("a subscriber that stops reading while 100,000 events of 1 KiB are appended", () => {
  let db: TestDatabase;
  let server: ServerProcess;
  let warmUp: Written;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startServerProcess({ DATABASE_URL: db.url });
    // Appends of 1 MiB grow the server's heap to their working size whatever subscribers do
    // (about 120 MiB of RSS here): grown first, it leaves the measurement to the subscribers.
    warmUp = await write(server.url, "warmup", WARM_UP_EVENTS);
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  }, 30_000);

  it("slows no other subscriber, holds the server's memory bounded, and later gets every event once, in order, after a fell-behind", async () => {
    const address = `127.0.0.1:${server.port}`;
    const slow = follow(ownChannel(address), { startPoint: "START_POINT_END" }, { pauseAt: BATCH });
    const readers = [
      follow(ownChannel(address), { startPoint: "START_POINT_END" }),
      follow(ownChannel(address), { startPoint: "START_POINT_START" }),
      follow(ownChannel(address), { filter: { category: "load" } }),
    ];
    const followers = [slow, ...readers];
    try {
      await Promise.all(followers.map((f) => f.caughtUp));

      const before = server.rss();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, server.rss())), 100);
      const began = Date.now();
      let written: Written;
      let wroteAt: number;
      let slowHad: number;
      try {
        // The sleeper reads the first batch live, then stops reading for the other 99.
        written = await write(server.url, "load", EVENTS, async () => {
          await until(() => slow.paused, 10_000, "the slow subscriber to read the first batch");
        });
        wroteAt = Date.now();
        slowHad = slow.ids.length;
        // Well past the bound, so that a failure shows by how much.
        await until(() => readers.every((r) => r.loaded >= EVENTS), wroteAt + 30_000 - Date.now(), "the readers").catch(() => {});
      } finally {
        clearInterval(sampler);
      }
      peak = Math.max(peak, server.rss());
      const growth = peak - before;
      const writeMs = wroteAt - began;
      const lags = readers.map((r) => (r.completedAt === undefined ? `not done (${r.loaded} events)` : r.completedAt - wroteAt));
      console.log(
        `${EVENTS} events of ${EVENT_BYTES} B appended in ${writeMs} ms (${Math.round(EVENTS / (writeMs / 1000))} events/s); ` +
          `readers had every event ${lags.join(", ")} ms after the last append (fell behind: ${readers.map((r) => r.fellBehind.length).join(", ")}); ` +
          `server RSS ${(before / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB, growth ${(growth / MiB).toFixed(1)} MiB`,
      );

      expect(slowHad).toBe(BATCH);
      expect(readers.map((r) => r.loaded)).toEqual(readers.map(() => EVENTS));
      const [fromEnd, fromStart, category] = readers;
      expect(fromEnd.ids).toEqual(written.ids);
      expect(fromStart.ids).toEqual([...warmUp.ids, ...written.ids]);
      expect(category.ids).toEqual(written.ids);
      for (const r of readers) expect(r.errors).toEqual([]);
      for (const r of readers) expect(r.completedAt! - wroteAt).toBeLessThan(LAG_MS);
      expect(growth).toBeLessThan(RSS_GROWTH_LIMIT);

      const resumed = Date.now();
      slow.resume();
      await until(() => slow.ids.length >= EVENTS, 60_000, "the slow subscriber to have every event", () => `${slow.ids.length}`);
      console.log(`the slow subscriber, resumed, had every event after ${Date.now() - resumed} ms (fell behind ${slow.fellBehind.length} time(s))`);
      expect(slow.errors).toEqual([]);
      expect(slow.ids).toEqual(written.ids);
      expect(slow.positions).toEqual(written.positions);
      // Its buffer filled while it slept; the fell-behind says where storage takes over: right
      // after the last event it had been sent.
      expect(slow.fellBehind.length).toBeGreaterThanOrEqual(1);
      const sentBefore = slow.fellBehind[0].afterEvents;
      expect(sentBefore).toBeGreaterThanOrEqual(BATCH);
      expect(slow.fellBehind[0].position).toBe(written.positions[sentBefore - 1]);
    } finally {
      for (const f of followers) f.cancel();
    }
  }, 150_000);
});

/** Appends of 1,000 events, one after another, across ten streams of `category`. */
async function write(baseUrl: string, category: string, count: number, afterFirstBatch?: () => Promise<void>): Promise<Written> {
  const client = createClient(EventStoreService, createGrpcTransport({ baseUrl }));
  const data = randomBytes(EVENT_BYTES);
  const ids: string[] = [];
  const positions: bigint[] = [];
  for (let b = 0; b < count / BATCH; b++) {
    const events = Array.from({ length: BATCH }, () => ({
      id: randomUUID(),
      type: "Loaded",
      contentType: "application/octet-stream",
      payload: { case: "data" as const, value: data },
    }));
    const r = await client.append({ stream: `${category}-${b % STREAMS}`, events });
    ids.push(...r.eventIds);
    positions.push(...r.positions);
    if (b === 0) await afterFirstBatch?.();
  }
  return { ids, positions };
}

async function until(done: () => boolean, ms: number, what: string, state?: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${state ? ` (${state()})` : ""}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A grpc-js client (proto-loader on our .proto) on a channel of its own: grpc-js shares one
 * HTTP/2 connection between clients of the same target, and each subscriber here stands for a
 * separate consumer.
 */
function ownChannel(address: string): grpc.Client {
  const proto = join(__dirname, "../../proto");
  const definition = protoLoader.loadSync(join(proto, "eventstore/v1/eventstore.proto"), {
    includeDirs: [proto],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as any;
  return new pkg.eventstore.v1.EventStoreService(address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

interface Follower {
  caughtUp: Promise<void>;
  paused: boolean;
  ids: string[];
  positions: bigint[];
  fellBehind: { position: bigint; afterEvents: number }[];
  errors: unknown[];
  /** Events of the category "load" received. */
  loaded: number;
  /** When the last of the EVENTS arrived. */
  completedAt: number | undefined;
  resume(): void;
  cancel(): void;
}

/** A subscription that records what it receives; with `pauseAt`, it stops reading after that many events. */
function follow(client: any, request: Record<string, unknown>, options: { pauseAt?: number } = {}): Follower {
  const call: grpc.ClientReadableStream<any> = client.Subscribe(request);
  let caughtUp!: () => void;
  const f: Follower = {
    caughtUp: new Promise<void>((resolve) => (caughtUp = resolve)),
    paused: false,
    ids: [],
    positions: [],
    fellBehind: [],
    errors: [],
    loaded: 0,
    completedAt: undefined,
    resume() {
      f.paused = false;
      call.resume();
    },
    cancel() {
      call.cancel();
      client.close();
    },
  };
  let pauseAt = options.pauseAt;
  call.on("data", (m: any) => {
    switch (m.message) {
      case "events":
        for (const e of m.events.events) {
          f.ids.push(e.id);
          f.positions.push(BigInt(e.position));
          if (e.stream.startsWith("load-") && ++f.loaded === EVENTS) f.completedAt = Date.now();
        }
        if (pauseAt !== undefined && f.ids.length >= pauseAt) {
          pauseAt = undefined; // once
          f.paused = true;
          call.pause();
        }
        break;
      case "caughtUp":
        caughtUp();
        break;
      case "fellBehind":
        f.fellBehind.push({ position: BigInt(m.fellBehind.position), afterEvents: f.ids.length });
        break;
    }
  });
  call.on("error", (e: grpc.ServiceError) => {
    if (e.code !== grpc.status.CANCELLED) f.errors.push(e);
  });
  return f;
}

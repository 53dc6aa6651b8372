import { randomBytes, randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { LiveFeed } from "../../src/subscriptions";
import { createGrpcJsClient, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// The real feed, only recorded as the server makes it, so that a test can count its live
// subscribers: the server exposes that number nowhere else.
jest.mock("../../src/subscriptions/live-feed", () => {
  const actual = jest.requireActual("../../src/subscriptions/live-feed");
  const made: LiveFeed[] = [];
  return {
    ...actual,
    madeFeeds: made,
    createLiveFeed: (...args: unknown[]) => {
      const feed = actual.createLiveFeed(...args);
      made.push(feed);
      return feed;
    },
  };
});
const madeFeeds: LiveFeed[] = jest.requireMock("../../src/subscriptions/live-feed").madeFeeds;

describe("a subscription through the canonical gRPC client (@grpc/grpc-js + proto-loader)", () => {
  let db: TestDatabase;
  let server: TestServer;
  let feed: LiveFeed;
  let client: any;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({ kind: "postgres", url: db.url });
    expect(madeFeeds).toHaveLength(1);
    feed = madeFeeds[0];
    client = createGrpcJsClient(`127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    client?.close();
    await server?.stop();
    await db?.drop();
  });

  const append = (stream: string, ...types: string[]) =>
    unary(client, "Append", { stream, events: types.map((type) => ({ id: randomUUID(), type, json: { structValue: { fields: { type: { stringValue: type } } } } })) });

  it("confirms, sends the history, caught-up, then live events as they commit", async () => {
    const stream = `cart-${randomUUID()}`;
    const history = await append(stream, "Opened", "ItemAdded");
    const sub = follow(client.Subscribe({ stream, dataEncoding: "DATA_ENCODING_JSON" }));
    try {
      await sub.until((ms) => ms.some((m) => m.message === "caughtUp"));
      const live = await append(stream, "ItemAdded", "CheckedOut");
      await sub.until((ms) => events(ms).length === 4);

      const shown = sub.messages.filter((m) => m.message !== "heartbeat" && m.message !== "checkpoint");
      // Events come in batches: the history in one, each live append (one commit) in one.
      expect(shown.map((m) => m.message)).toEqual(["confirmation", "events", "caughtUp", "events"]);
      expect(shown[0].confirmation.afterPosition).toBe("0");
      expect(shown[0].confirmation.subscriptionId).not.toBe("");
      expect(BigInt(shown[2].caughtUp.position)).toBeGreaterThanOrEqual(BigInt(history.positions[1]));
      expect(BigInt(shown[2].caughtUp.position)).toBeLessThan(BigInt(live.positions[0]));
      expect(events(sub.messages).map((e) => [e.id, e.type, e.stream, e.revision, e.position])).toEqual([
        [history.eventIds[0], "Opened", stream, "0", history.positions[0]],
        [history.eventIds[1], "ItemAdded", stream, "1", history.positions[1]],
        [live.eventIds[0], "ItemAdded", stream, "2", live.positions[0]],
        [live.eventIds[1], "CheckedOut", stream, "3", live.positions[1]],
      ]);
      expect(events(sub.messages).map((e) => e.json.structValue.fields.type.stringValue)).toEqual(["Opened", "ItemAdded", "ItemAdded", "CheckedOut"]);
    } finally {
      sub.cancel();
    }
  });

  it("a filtered subscription that matches nothing reports checkpoints; resuming after one misses nothing", async () => {
    const wanted = `Wanted${randomUUID().slice(0, 8)}`;
    const sub = follow(client.Subscribe({ startPoint: "START_POINT_END", filter: { eventTypes: [wanted] } }));
    try {
      await sub.until((ms) => ms.some((m) => m.message === "caughtUp"));
      const noise = await append(`noise-${randomUUID()}`, "Noise", "Noise", "Noise");
      // Checkpoints come at most once a second (the server's default) while the position moves.
      await sub.until((ms) => checkpoints(ms).some((p) => p >= BigInt(noise.positions[2])), 10_000);
      expect(events(sub.messages)).toEqual([]);
      const checkpoint = checkpoints(sub.messages).at(-1)!;

      // A named subscription committed at the checkpoint starts right after it.
      const name = `filtered-${randomUUID()}`;
      await unary(client, "CommitCheckpoint", { subscriptionName: name, position: String(checkpoint) });
      const match = await append(`match-${randomUUID()}`, "Noise", wanted);
      await sub.until((ms) => events(ms).length === 1);
      expect(events(sub.messages).map((e) => [e.type, e.position])).toEqual([[wanted, match.positions[1]]]);

      const resumed = follow(client.Subscribe({ subscriptionName: name, filter: { eventTypes: [wanted] } }));
      try {
        await resumed.until((ms) => ms.some((m) => m.message === "caughtUp"));
        expect(resumed.messages[0].confirmation.afterPosition).toBe(String(checkpoint));
        expect(events(resumed.messages).map((e) => [e.type, e.position])).toEqual([[wanted, match.positions[1]]]);
      } finally {
        resumed.cancel();
      }
    } finally {
      sub.cancel();
    }
  });

  it("cancelling a subscription frees its place in the live feed", async () => {
    // The earlier tests cancelled theirs: none is left.
    await until(() => feed.subscriberCount === 0, 5000, () => `${feed.subscriberCount} live subscribers`);
    const subs = [0, 1, 2].map(() => follow(client.Subscribe({ startPoint: "START_POINT_END" })));
    try {
      await Promise.all(subs.map((s) => s.until((ms) => ms.some((m) => m.message === "caughtUp"))));
      expect(feed.subscriberCount).toBe(3);

      subs[0].cancel();
      await until(() => feed.subscriberCount === 2, 5000, () => `${feed.subscriberCount} live subscribers`);
      // The others are unaffected: still live, still served.
      const stream = `after-cancel-${randomUUID()}`;
      await append(stream, "StillHere");
      await Promise.all(subs.slice(1).map((s) => s.until((ms) => events(ms).some((e) => e.stream === stream))));
      expect(events(subs[0].messages).filter((e) => e.stream === stream)).toEqual([]);

      subs[1].cancel();
      subs[2].cancel();
      await until(() => feed.subscriberCount === 0, 5000, () => `${feed.subscriberCount} live subscribers`);
      expect(subs.flatMap((s) => s.errors)).toEqual([]);
    } finally {
      subs.forEach((s) => s.cancel());
    }
  });

  it("cancelling a subscription that stopped reading, with the server's writes blocked, frees it too", async () => {
    await until(() => feed.subscriberCount === 0, 5000, () => `${feed.subscriberCount} live subscribers`);
    const call: grpc.ClientReadableStream<any> = client.Subscribe({ startPoint: "START_POINT_END" });
    const sub = follow(call);
    try {
      await sub.until((ms) => ms.some((m) => m.message === "caughtUp"));
      call.pause();
      // Far more than HTTP/2 lets through unread (64 KiB a stream), far less than the buffer that
      // would make it fall behind (and leave the feed by itself). Random: no compression shrinks it.
      const data = randomBytes(1024);
      for (let i = 0; i < 4; i++) {
        await unary(client, "Append", { stream: `blocked-${i}`, events: Array.from({ length: 100 }, () => ({ type: "Filler", data })) });
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(feed.subscriberCount).toBe(1);
      call.cancel();
      await until(() => feed.subscriberCount === 0, 5000, () => `${feed.subscriberCount} live subscribers`);
    } finally {
      sub.cancel();
    }
  });
});

const events = (ms: any[]) => ms.filter((m) => m.message === "events").flatMap((m) => m.events.events);
const checkpoints = (ms: any[]) => ms.filter((m) => m.message === "checkpoint").map((m) => BigInt(m.checkpoint.position));

interface Followed {
  messages: any[];
  errors: grpc.ServiceError[];
  until(done: (messages: any[]) => boolean, ms?: number): Promise<void>;
  cancel(): void;
}

/** Records a subscription call's messages; errors other than our own cancel are kept. */
function follow(call: grpc.ClientReadableStream<any>): Followed {
  const f: Followed = {
    messages: [],
    errors: [],
    until: (done, ms = 5000) => until(() => done(f.messages) || f.errors.length > 0, ms, () => JSON.stringify(f.messages.map((m) => m.message))).then(() => {
      if (f.errors.length > 0) throw f.errors[0];
    }),
    cancel: () => call.cancel(),
  };
  call.on("data", (m) => f.messages.push(m));
  call.on("error", (e: grpc.ServiceError) => {
    if (e.code !== grpc.status.CANCELLED) f.errors.push(e);
  });
  return f;
}

async function until(done: () => boolean, ms: number, state: () => string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out (${state()})`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

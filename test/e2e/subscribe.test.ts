import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService, StartPoint, type SubscribeRequest, type SubscribeResponse } from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { SubscribeRequestSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

let db: TestDatabase;
let server: TestServer;
let client: Client<typeof EventStoreService>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const append = (stream: string, ...types: string[]) =>
  client.append({ stream, events: types.map((type) => ({ id: randomUUID(), type, payload: { case: "data" as const, value: new Uint8Array([1]) } })) });

/** Reads messages from a subscription until `until` says stop; returns them and cancels the call. */
async function take(
  request: MessageInitShape<typeof SubscribeRequestSchema>,
  until: (seen: SubscribeResponse[]) => boolean,
  during?: (seen: SubscribeResponse[]) => Promise<void> | void,
): Promise<SubscribeResponse[]> {
  const abort = new AbortController();
  const seen: SubscribeResponse[] = [];
  const timer = setTimeout(() => abort.abort(), 15_000);
  try {
    for await (const m of client.subscribe(request as SubscribeRequest, { signal: abort.signal })) {
      seen.push(m);
      await during?.(seen);
      if (until(seen)) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

const kinds = (ms: SubscribeResponse[]) => ms.map((m) => m.message.case);
const events = (ms: SubscribeResponse[]) => ms.flatMap((m) => (m.message.case === "events" ? m.message.value.events : []));

describe("Subscribe", () => {
  it("confirms at once, sends the history, caught-up, then live events as they commit", async () => {
    const s = `sub-${randomUUID()}`;
    await append(s, "A", "B");
    let appended = false;
    const seen = await take(
      { stream: s },
      (ms) => events(ms).length === 4,
      async (ms) => {
        if (!appended && ms.at(-1)?.message.case === "caughtUp") {
          appended = true;
          await append(s, "C", "D");
        }
      },
    );
    // The history comes in one batch: the two events fit in one message.
    expect(kinds(seen).slice(0, 3)).toEqual(["confirmation", "events", "caughtUp"]);
    expect(events(seen).map((e) => [e.type, e.revision])).toEqual([["A", 0n], ["B", 1n], ["C", 2n], ["D", 3n]]);
  });

  it("a subscription to a stream that does not exist yet gets its events once it is created", async () => {
    const s = `later-${randomUUID()}`;
    let appended = false;
    const seen = await take({ stream: s }, (ms) => events(ms).length === 1, async (ms) => {
      if (!appended && ms.at(-1)?.message.case === "caughtUp") {
        appended = true;
        await append(s, "Born");
      }
    });
    expect(events(seen).map((e) => e.type)).toEqual(["Born"]);
  });

  it("from the end sends only events committed after the confirmation", async () => {
    const s = `end-${randomUUID()}`;
    await append(s, "Old");
    let appended = false;
    const seen = await take({ start: { case: "startPoint", value: StartPoint.END } }, (ms) => events(ms).some((e) => e.stream === s), async (ms) => {
      if (!appended && ms.at(-1)?.message.case === "caughtUp") {
        appended = true;
        await append(s, "New");
      }
    });
    expect(events(seen).map((e) => e.type)).toEqual(["New"]);
  });

  it("after a position and after a revision", async () => {
    const s = `after-${randomUUID()}`;
    const r = await append(s, "0", "1", "2", "3");
    const byPosition = await take({ stream: s, start: { case: "afterPosition", value: r.positions[1] } }, (ms) => ms.some((m) => m.message.case === "caughtUp"));
    expect(events(byPosition).map((e) => e.type)).toEqual(["2", "3"]);
    const byRevision = await take({ stream: s, start: { case: "afterRevision", value: 2n } }, (ms) => ms.some((m) => m.message.case === "caughtUp"));
    expect(events(byRevision).map((e) => e.type)).toEqual(["3"]);
  });

  it("a filtered subscription that matches nothing still reports checkpoints, and heartbeats when idle", async () => {
    const seen = await take(
      { start: { case: "startPoint", value: StartPoint.END }, filter: { eventTypes: ["NeverWritten"] }, heartbeatIntervalMs: 300 },
      (ms) => ms.some((m) => m.message.case === "checkpoint") && ms.some((m) => m.message.case === "heartbeat"),
      async (ms) => {
        if (ms.length === 2) await append(`noise-${randomUUID()}`, "Noise");
      },
    );
    const checkpoint = seen.find((m) => m.message.case === "checkpoint")!;
    expect(checkpoint.message.case === "checkpoint" && checkpoint.message.value.position).toBeGreaterThan(0n);
    expect(events(seen)).toEqual([]);
  });

  it("a durable subscription resumes right after its committed checkpoint", async () => {
    const name = `projector-${randomUUID()}`;
    const s = `durable-${randomUUID()}`;
    const r = await append(s, "1", "2", "3");
    await client.commitCheckpoint({ subscriptionName: name, position: r.positions[1] });
    expect((await client.getCheckpoint({ subscriptionName: name })).position).toBe(r.positions[1]);
    const seen = await take({ stream: s, subscriptionName: name }, (ms) => ms.some((m) => m.message.case === "caughtUp"));
    expect(events(seen).map((e) => e.type)).toEqual(["3"]);
    expect((await client.getCheckpoint({ subscriptionName: `${name}-none` })).position).toBeUndefined();
  });

  it.each([
    ["an unknown start point", { start: { case: "startPoint", value: 7 as StartPoint } }, "start_point"],
    ["after_revision without a stream", { start: { case: "afterRevision", value: 1n } }, "after_revision"],
    ["a consumer group on one stream", { stream: "x-1", consumerGroup: { member: 0, size: 2 } }, "consumer_group"],
    ["a group member out of range", { consumerGroup: { member: 2, size: 2 } }, "consumer_group.member"],
    ["a group of size 0", { consumerGroup: { member: 0, size: 0 } }, "consumer_group.size"],
    ["a too short heartbeat", { heartbeatIntervalMs: 5 }, "heartbeat_interval_ms"],
    ["an invalid regex", { filter: { matchers: [{ field: { case: "metadataKey", value: "k" }, operator: 9, value: { kind: { case: "stringValue", value: "(" } } }] } }, "filter.matchers[0].value"],
    ["an empty stream name... of control characters", { stream: "\u0001" }, "stream"],
  ] as [string, MessageInitShape<typeof SubscribeRequestSchema>, string][])("refuses %s with the field named", async (_, request, field) => {
    const err = await take(request, () => true).then(
      () => undefined,
      (e) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.findDetails(ErrorInfoSchema)[0]?.metadata.field).toBe(field);
  });
});

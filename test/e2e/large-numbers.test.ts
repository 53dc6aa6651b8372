import * as grpc from "@grpc/grpc-js";
import postgres from "postgres";
import { createGrpcJsClient, errorInfo, serverStream, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// Every uint64 has a meaning up to 2^64-1 (Go's math.MaxUint64, "the end"), though PostgreSQL's
// bigint stops at 2^63-1: a read or subscription from beyond the end starts at the end; an
// expected revision or a checkpoint that cannot exist is refused naming its field. Never
// INTERNAL, and a subscription is confirmed only if it can run.

const MAX_UINT64 = "18446744073709551615";
const MAX_INT64 = "9223372036854775807";

let db: TestDatabase;
let server: TestServer;
let client: ReturnType<typeof createGrpcJsClient>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  client = createGrpcJsClient(`127.0.0.1:${server.port}`);
  await unary(client, "append", { stream: "big-1", events: [{ type: "A" }, { type: "B" }] });
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  await db?.drop();
});

const events = (pages: { events: { type: string }[] }[]) => pages.flatMap((p) => p.events.map((e) => e.type));

async function failure(call: Promise<unknown>): Promise<{ code: number; reason?: string; field?: string }> {
  try {
    await call;
  } catch (e) {
    const err = e as grpc.ServiceError;
    const info = errorInfo(err);
    return { code: err.code, reason: info?.reason, field: info?.metadata.field };
  }
  throw new Error("expected the call to fail");
}

/** A subscription's messages until its deadline, and how it ended. */
function subscribe(request: object): Promise<{ kinds: string[]; code: number }> {
  return new Promise((resolve) => {
    const kinds: string[] = [];
    const call = client.subscribe(request, { deadline: Date.now() + 500 });
    call.on("data", (m: { message: string }) => kinds.push(m.message));
    call.on("error", (e: grpc.ServiceError) => resolve({ kinds, code: e.code }));
    call.on("end", () => resolve({ kinds, code: grpc.status.OK }));
  });
}

describe("reads from beyond every stored number", () => {
  it("ReadStream forwards from 2^64-1 is empty; backwards, it starts at the last event", async () => {
    expect(events(await serverStream(client, "readStream", { stream: "big-1", fromRevision: MAX_UINT64 }))).toEqual([]);
    expect(events(await serverStream(client, "readStream", { stream: "big-1", fromRevision: MAX_UINT64, direction: "DIRECTION_BACKWARDS" }))).toEqual(["B", "A"]);
  });

  it("ReadAll forwards from 2^64-1 is empty; backwards, it starts at the head", async () => {
    expect(events(await serverStream(client, "readAll", { fromPosition: MAX_UINT64 }))).toEqual([]);
    expect(events(await serverStream(client, "readAll", { fromPosition: MAX_UINT64, direction: "DIRECTION_BACKWARDS" }))).toEqual(["B", "A"]);
  });
});

describe("subscriptions from beyond the end", () => {
  it("after_revision 2^64-1 of a stream: confirmed, caught up with nothing, ended by its deadline", async () => {
    const got = await subscribe({ stream: "big-1", afterRevision: MAX_UINT64 });
    expect(got.kinds[0]).toBe("confirmation");
    expect(got.kinds).toContain("caughtUp");
    expect(got.kinds).not.toContain("events");
    expect(got.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it.each([MAX_UINT64, MAX_INT64, "3"])("after_position %s, past the head, is INVALID_ARGUMENT naming after_position, with no confirmation", async (position) => {
    const got = await subscribe({ afterPosition: position });
    expect(got.kinds).toEqual([]);
    expect(got.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it("after_position at the head is confirmed and follows what comes next", async () => {
    const got = await subscribe({ afterPosition: "2" });
    expect(got.kinds.slice(0, 2)).toEqual(["confirmation", "caughtUp"]);
    expect(got.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });
});

describe("numbers that name what cannot exist", () => {
  it("an expected revision past 2^63-1 is INVALID_ARGUMENT naming expected_revision, and writes nothing", async () => {
    expect(await failure(unary(client, "append", { stream: "big-1", expectedRevision: MAX_UINT64, events: [{ type: "C" }] }))).toEqual({
      code: grpc.status.INVALID_ARGUMENT,
      reason: "INVALID_ARGUMENT",
      field: "expected_revision",
    });
    // One that fits but is not the stream's revision is the usual conflict.
    expect(await failure(unary(client, "append", { stream: "big-1", expectedRevision: MAX_INT64, events: [{ type: "C" }] }))).toMatchObject({
      code: grpc.status.ABORTED,
      reason: "WRONG_EXPECTED_REVISION",
    });
    expect(events(await serverStream(client, "readStream", { stream: "big-1" }))).toEqual(["A", "B"]);
  });

  it("a checkpoint past the log's head is INVALID_ARGUMENT naming position, and leaves the last one", async () => {
    await unary(client, "commitCheckpoint", { subscriptionName: "far", position: "2" });
    for (const position of [MAX_UINT64, MAX_INT64, "3"]) {
      expect(await failure(unary(client, "commitCheckpoint", { subscriptionName: "far", position }))).toEqual({
        code: grpc.status.INVALID_ARGUMENT,
        reason: "INVALID_ARGUMENT",
        field: "position",
      });
    }
    const got = await unary<{ position: string }>(client, "getCheckpoint", { subscriptionName: "far" });
    expect(got.position).toBe("2");
  });

  it("a durable subscription whose stored checkpoint is past the head (a restored database) is FAILED_PRECONDITION, with no confirmation", async () => {
    await unary(client, "commitCheckpoint", { subscriptionName: "restored", position: "2" });
    // As a restore to an earlier point leaves it: the log's head below a consumer's position.
    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      await sql`update eventstore.subscription_checkpoints set position = 40 where name = 'restored'`;
    } finally {
      await sql.end();
    }
    const refused = await new Promise<{ kinds: string[]; err?: grpc.ServiceError }>((resolve) => {
      const kinds: string[] = [];
      const call = client.subscribe({ subscriptionName: "restored" }, { deadline: Date.now() + 2000 });
      call.on("data", (m: { message: string }) => kinds.push(m.message));
      call.on("error", (err: grpc.ServiceError) => resolve({ kinds, err }));
      call.on("end", () => resolve({ kinds }));
    });
    expect(refused.kinds).toEqual([]);
    expect(refused.err?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(errorInfo(refused.err!)).toMatchObject({ reason: "CHECKPOINT_PAST_HEAD", metadata: { subscription_name: "restored", position: "40", head: "2" } });
    // Committed back at or below the head, it resumes.
    await unary(client, "commitCheckpoint", { subscriptionName: "restored", position: "1" });
    const resumed = await subscribe({ subscriptionName: "restored" });
    expect(resumed.kinds.slice(0, 2)).toEqual(["confirmation", "events"]);
  });
});

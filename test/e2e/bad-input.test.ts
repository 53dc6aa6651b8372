import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { DataEncoding, Direction, EventStoreService, ExpectedState, Operator, type AppendRequest } from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { AppendRequestSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

let db: TestDatabase;
let server: TestServer;
let client: Client<typeof EventStoreService>;

beforeAll(async () => {
  db = await createTestDatabase();
  // Small limits, so that exceeding them is cheap.
  server = await startTestServer({ kind: "postgres", url: db.url }, { maxEventBytes: 1000, maxAppendEvents: 5, maxAppendBytes: 3000, maxAppendStreams: 2 });
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
  await client.append({ stream: "existing-1", events: [{ type: "Seeded" }] });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

async function lastPosition(): Promise<bigint> {
  for await (const m of client.readAll({ direction: 2, limit: 1n })) return m.events[0].position;
  return 0n;
}

async function refusal(call: () => Promise<unknown>): Promise<{ code: Code; reason?: string; field?: string; message: string }> {
  try {
    await call();
  } catch (e) {
    const err = ConnectError.from(e);
    const [info] = err.findDetails(ErrorInfoSchema);
    return { code: err.code, reason: info?.reason, field: info?.metadata.field, message: err.rawMessage };
  }
  throw new Error("expected the call to be refused");
}

const event = (over: object = {}) => ({ type: "Ok", payload: { case: "data" as const, value: new Uint8Array([1]) }, ...over });
type Append = MessageInitShape<typeof AppendRequestSchema>;

describe("bad appends are refused with the field named, and write nothing", () => {
  const cases: [string, Append, Code, string, string][] = [
    ["an empty stream name", { stream: "", events: [event()] }, Code.InvalidArgument, "INVALID_ARGUMENT", "stream"],
    ["a 257-character stream name", { stream: "s".repeat(257), events: [event()] }, Code.InvalidArgument, "INVALID_ARGUMENT", "stream"],
    ["a control character in the name", { stream: "a\u0007b", events: [event()] }, Code.InvalidArgument, "INVALID_ARGUMENT", "stream"],
    ["an empty event type", { stream: "ok-1", events: [event(), event({ type: "" })] }, Code.InvalidArgument, "INVALID_ARGUMENT", "events[1].type"],
    ["a malformed event id", { stream: "ok-1", events: [event({ id: "not-a-uuid" })] }, Code.InvalidArgument, "INVALID_ARGUMENT", "events[0].id"],
    ["no events", { stream: "ok-1", events: [] }, Code.InvalidArgument, "INVALID_ARGUMENT", "events"],
    ["an unknown expected state", { stream: "ok-1", expected: { case: "expectedState", value: 42 as ExpectedState }, events: [event()] }, Code.InvalidArgument, "INVALID_ARGUMENT", "expected_state"],
    ["an oversized event", { stream: "ok-1", events: [event({ payload: { case: "data", value: new Uint8Array(1001) } })] }, Code.ResourceExhausted, "LIMIT_EXCEEDED", "events[0]"],
    ["too many events", { stream: "ok-1", events: [event(), event(), event(), event(), event(), event()] }, Code.ResourceExhausted, "LIMIT_EXCEEDED", "events"],
    ["too many bytes in one append", { stream: "ok-1", events: [1, 2, 3, 4].map(() => event({ payload: { case: "data", value: new Uint8Array(900) } })) }, Code.ResourceExhausted, "LIMIT_EXCEEDED", "events"],
  ];
  it.each(cases)("%s", async (_, request, code, reason, field) => {
    const before = await lastPosition();
    const got = await refusal(() => client.append(request as AppendRequest));
    expect(got).toMatchObject({ code, reason, field });
    expect(got.message).not.toMatch(/select|insert|eventstore\.|\bat \w+ \(/i);
    expect(await lastPosition()).toBe(before);
  });

  it("a multi-stream append with a bad second stream writes none of them", async () => {
    const before = await lastPosition();
    const got = await refusal(() =>
      client.multiStreamAppend({ appends: [{ stream: "fine-1", events: [event()] }, { stream: "", events: [event()] }] }),
    );
    expect(got).toMatchObject({ code: Code.InvalidArgument, field: "appends[1].stream" });
    expect(await lastPosition()).toBe(before);
    const tooMany = await refusal(() =>
      client.multiStreamAppend({ appends: ["a-1", "a-2", "a-3"].map((stream) => ({ stream, events: [event()] })) }),
    );
    expect(tooMany).toMatchObject({ code: Code.ResourceExhausted, field: "appends" });
  });
});

describe("bad reads are refused with the field named", () => {
  const drain = async (it: AsyncIterable<unknown>) => {
    for await (const _ of it) void _;
  };
  it.each([
    ["a negative limit", () => drain(client.readStream({ stream: "existing-1", limit: -1n })), "limit"],
    ["an unknown direction", () => drain(client.readStream({ stream: "existing-1", direction: 9 as Direction })), "direction"],
    ["an unknown data encoding", () => drain(client.readAll({ dataEncoding: 7 as DataEncoding })), "data_encoding"],
    ["an invalid regex", () => drain(client.readAll({ filter: { matchers: [{ field: { case: "metadataKey", value: "k" }, operator: Operator.REGEX, value: { kind: { case: "stringValue", value: "([" } } }] } })), "filter.matchers[0].value"],
    ["an unknown operator", () => drain(client.readAll({ filter: { matchers: [{ field: { case: "metadataKey", value: "k" }, operator: 99 as Operator, value: { kind: { case: "numberValue", value: 1 } } }] } })), "filter.matchers[0].operator"],
    ["a matcher without a field", () => drain(client.readAll({ filter: { matchers: [{ operator: Operator.EQ, value: { kind: { case: "numberValue", value: 1 } } }] } })), "filter.matchers[0].field"],
    ["a negative page size", () => client.listStreams({ pageSize: -1 }), "page_size"],
    ["a forged page token", () => client.listStreams({ pageToken: "bm9wZQ" }), "page_token"],
    ["an empty stream name to describe", () => client.getStream({ stream: "" }), "stream"],
  ])("%s", async (_, call, field) => {
    const got = await refusal(call);
    expect(got).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field });
  });
});

import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createGrpcJsClient, errorInfo, serverStream, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// What JSON cannot hold is refused with INVALID_ARGUMENT naming the field, never answered
// INTERNAL and never stored as something else: NaN and the infinities (JSON.stringify writes
// null for them), a google.protobuf.Value with no kind (decoders make it null), and text that
// PostgreSQL cannot hold (U+0000, an unpaired surrogate, bytes that are not UTF-8).

let db: TestDatabase;
let server: TestServer;
let client: ReturnType<typeof createGrpcJsClient>;
let session: ClientHttp2Session;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  client = createGrpcJsClient(`127.0.0.1:${server.port}`);
  session = connect(server.url);
  session.on("error", () => {});
});

afterAll(async () => {
  client?.close();
  session?.close();
  await server?.stop();
  await db?.drop();
});

async function refusal(call: Promise<unknown>): Promise<{ code: number; field?: string }> {
  try {
    await call;
  } catch (e) {
    const err = e as grpc.ServiceError;
    return { code: err.code, field: errorInfo(err)?.metadata.field };
  }
  throw new Error("expected the call to be refused");
}

async function head(): Promise<string> {
  const [last] = await serverStream(client, "readAll", { direction: "DIRECTION_BACKWARDS", limit: "1" });
  return last?.events[0]?.position ?? "0";
}

const event = (over: object) => ({ type: "T", ...over });

describe("over gRPC (binary, as grpc-js and Go send it)", () => {
  const appends: [string, object, string][] = [
    ["a json payload of NaN", event({ json: { numberValue: NaN } }), "events[0].json"],
    ["a json payload of Infinity", event({ json: { numberValue: Infinity } }), "events[0].json"],
    ["a json payload with no kind", event({ json: {} }), "events[0].json"],
    ["a json payload holding a NaN deep down", event({ json: { listValue: { values: [{ structValue: { fields: { a: { numberValue: NaN } } } }] } } }), "events[0].json"],
    ["metadata holding NaN", event({ metadata: { fields: { a: { numberValue: NaN } } } }), "events[0].metadata"],
    ["metadata holding -Infinity in a list", event({ metadata: { fields: { a: { listValue: { values: [{ numberValue: -Infinity }] } } } } }), "events[0].metadata"],
    ["metadata holding a Value with no kind", event({ metadata: { fields: { a: {} } } }), "events[0].metadata"],
    ["metadata holding a Value with no kind in a list", event({ metadata: { fields: { a: { listValue: { values: [{}] } } } } }), "events[0].metadata"],
  ];
  it.each(appends)("an append with %s is INVALID_ARGUMENT naming %s, and writes nothing", async (_, e, field) => {
    const before = await head();
    expect(await refusal(unary(client, "append", { stream: "values-1", events: [e] }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, field });
    expect(await head()).toBe(before);
  });

  it("keeps null, finite numbers and nested values as sent", async () => {
    const metadata = { fields: { a: { nullValue: "NULL_VALUE" }, b: { numberValue: 1.5e300 }, c: { listValue: { values: [{ numberValue: -0.25 }, { boolValue: true }] } } } };
    await unary(client, "append", { stream: "values-2", events: [event({ metadata })] });
    const [page] = await serverStream(client, "readStream", { stream: "values-2" });
    expect(page.events[0].metadata.fields).toEqual({
      a: { nullValue: "NULL_VALUE", kind: "nullValue" },
      b: { numberValue: 1.5e300, kind: "numberValue" },
      c: { listValue: { values: [{ numberValue: -0.25, kind: "numberValue" }, { boolValue: true, kind: "boolValue" }] }, kind: "listValue" },
    });
  });

  const matchers: [string, object, string][] = [
    ["a matcher value of NaN", { metadataKey: "a", operator: "OPERATOR_EQ", value: { numberValue: NaN } }, "filter.matchers[0].value"],
    ["a matcher value with no kind", { metadataKey: "a", operator: "OPERATOR_EQ", value: {} }, "filter.matchers[0].value"],
    ["an in-list value of Infinity", { metadataKey: "a", operator: "OPERATOR_IN", values: [{ numberValue: 1 }, { numberValue: Infinity }] }, "filter.matchers[0].values[1]"],
  ];
  it.each(matchers)("a read with %s is INVALID_ARGUMENT naming %s", async (_, matcher, field) => {
    expect(await refusal(serverStream(client, "readAll", { filter: { matchers: [matcher] } }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, field });
    expect(await refusal(serverStream(client, "subscribe", { filter: { matchers: [matcher] } }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, field });
  });

  it("a list prefix that is not UTF-8, or holds U+0000, is INVALID_ARGUMENT naming prefix", async () => {
    // ListStreamsRequest { string prefix = 1; }: bytes FF FE are no UTF-8 at all.
    const status = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": "/eventstore.v1.EventStoreService/ListStreams", "content-type": "application/grpc", te: "trailers" });
      stream.end(Buffer.from([0, 0, 0, 0, 4, 0x0a, 2, 0xff, 0xfe]));
      let end: IncomingHttpHeaders = {};
      stream.on("response", (h) => (end = h));
      stream.on("trailers", (t) => (end = t));
      stream.on("data", () => {});
      stream.on("error", reject);
      stream.on("close", () => resolve(end));
    });
    expect(status["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
    expect(await refusal(unary(client, "listStreams", { prefix: "a\0b" }))).toEqual({ code: grpc.status.INVALID_ARGUMENT, field: "prefix" });
  });
});

describe("over gRPC-Web (binary, decoded by protobuf-es rather than the server's own decoder)", () => {
  it("refuses NaN and Values with no kind in metadata and payloads", async () => {
    const web = createClient(EventStoreService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const cases: [object, string][] = [
      [{ metadata: { a: NaN } }, "events[0].metadata"],
      [{ payload: { case: "json", value: create(ValueSchema, { kind: { case: "numberValue", value: Infinity } }) } }, "events[0].json"],
      [{ payload: { case: "json", value: create(ValueSchema, {}) } }, "events[0].json"],
    ];
    for (const [over, field] of cases) {
      const err = await web.append({ stream: "values-web", events: [{ type: "T", ...over }] }).then(() => undefined, (e: unknown) => ConnectError.from(e));
      expect(err?.code).toBe(Code.InvalidArgument);
      expect(err?.findDetails(ErrorInfoSchema)[0]?.metadata.field).toBe(field);
    }
  });

  it("refuses a Value with no kind in metadata over Connect binary, sent as bytes (protobuf-es would make it a null)", async () => {
    // AppendRequest { stream: "values-web", events: [{ type: "T", metadata: { fields: { a: Value {} } } }] }
    const entry = Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x00]);
    const struct = Buffer.concat([Buffer.from([0x0a, entry.byteLength]), entry]);
    const event = Buffer.concat([Buffer.from([0x12, 0x01, 0x54, 0x32, struct.byteLength]), struct]);
    const stream = Buffer.from("values-web");
    const body = Buffer.concat([Buffer.from([0x0a, stream.byteLength]), stream, Buffer.from([0x12, event.byteLength]), event]);
    const before = await head();
    const res = await fetch(`${server.url}/eventstore.v1.EventStoreService/Append`, { method: "POST", headers: { "content-type": "application/proto" }, body });
    const answer = (await res.json()) as { code: string; details?: { type: string; value: string }[] };
    const info = answer.details?.find((d) => d.type === "google.rpc.ErrorInfo");
    expect(answer.code).toBe("invalid_argument");
    expect(info && fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).metadata.field).toBe("events[0].metadata");
    expect(await head()).toBe(before);
  });
});

describe("over Connect JSON (curl)", () => {
  const post = (body: string) =>
    fetch(`${server.url}/eventstore.v1.EventStoreService/Append`, { method: "POST", headers: { "content-type": "application/json" }, body });
  it.each([
    ["an unpaired surrogate in a metadata value", `{"stream":"values-3","events":[{"type":"T","metadata":{"a":"\\ud800"}}]}`, "events[0].metadata"],
    ["an unpaired surrogate in a metadata key", `{"stream":"values-3","events":[{"type":"T","metadata":{"\\udc00":1}}]}`, "events[0].metadata"],
    ["U+0000 in a metadata key", `{"stream":"values-3","events":[{"type":"T","metadata":{"a\\u0000":1}}]}`, "events[0].metadata"],
  ])("%s is 400 INVALID_ARGUMENT naming %s", async (_, body, field) => {
    const before = await head();
    const res = await post(body);
    const answer = (await res.json()) as { code: string; details?: { type: string; value: string }[] };
    const info = answer.details?.find((d) => d.type === "google.rpc.ErrorInfo");
    expect(res.status).toBe(400);
    expect(answer.code).toBe("invalid_argument");
    expect(info && fromBinary(ErrorInfoSchema, Buffer.from(info.value, "base64")).metadata.field).toBe(field);
    expect(await head()).toBe(before);
  });

  // A string field that is not valid Unicode is refused by protobuf-es as it decodes the request,
  // before the server sees it: INVALID_ARGUMENT whose message names the field (no ErrorInfo).
  it.each([
    ["the type", `{"stream":"values-3","events":[{"type":"T\\ud800"}]}`, "eventstore.v1.ProposedEvent.type"],
    ["the stream name", `{"stream":"values-\\ud800","events":[{"type":"T"}]}`, "eventstore.v1.AppendRequest.stream"],
  ])("an unpaired surrogate in %s is 400 INVALID_ARGUMENT naming %s", async (_, body, field) => {
    const before = await head();
    const res = await post(body);
    const answer = (await res.json()) as { code: string; message: string };
    expect(res.status).toBe(400);
    expect(answer).toEqual({ code: "invalid_argument", message: expect.stringContaining(field) });
    expect(await head()).toBe(before);
  });
});

import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EventStoreService, ExpectedState, DataEncoding } from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

let db: TestDatabase;
let server: TestServer;
beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

const transports: [string, () => Transport][] = [
  ["gRPC over HTTP/2", () => createGrpcTransport({ baseUrl: server.url })],
  ["Connect over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" })],
  ["Connect over HTTP/2", () => createConnectTransport({ baseUrl: server.url, httpVersion: "2" })],
  ["Connect JSON over HTTP/1.1", () => createConnectTransport({ baseUrl: server.url, httpVersion: "1.1", useBinaryFormat: false })],
  ["gRPC-Web over HTTP/1.1", () => createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" })],
];

describe.each(transports)("a Connect-ES client, %s", (name, transport) => {
  let client: Client<typeof EventStoreService>;
  const stream = `conn-${name.replace(/\W+/g, "_")}`;
  beforeAll(() => {
    client = createClient(EventStoreService, transport());
  });

  it("appends and reads back, 64-bit numbers as bigints", async () => {
    const res = await client.append({
      stream,
      expected: { case: "expectedState", value: ExpectedState.NO_STREAM },
      events: [
        { type: "Opened", payload: { case: "data", value: new TextEncoder().encode('{"a":1}') }, metadata: { by: "test" } },
        { type: "Noted", payload: { case: "data", value: new Uint8Array([0, 200, 7]) }, contentType: "application/octet-stream" },
      ],
    });
    expect(res.revision).toBe(1n);
    const events = [];
    for await (const m of client.readStream({ stream })) events.push(...m.events);
    expect(events.map((e) => [e.type, e.revision, e.position])).toEqual([
      ["Opened", 0n, res.positions[0]],
      ["Noted", 1n, res.positions[1]],
    ]);
    expect(events[0].metadata).toEqual({ by: "test" });
    expect(events[1].payload).toEqual({ case: "data", value: new Uint8Array([0, 200, 7]) });
  });

  it("reads JSON data as a JSON value with DATA_ENCODING_JSON", async () => {
    const events = [];
    for await (const m of client.readStream({ stream, dataEncoding: DataEncoding.JSON })) events.push(...m.events);
    expect(events[0].payload.case).toBe("json");
    expect(events[1].payload.case).toBe("data");
  });

  it("carries ErrorInfo on errors", async () => {
    const err = await client
      .append({ stream, expected: { case: "expectedRevision", value: 0n }, events: [{ type: "X" }] })
      .then(() => undefined, (e: unknown) => ConnectError.from(e));
    if (!err) throw new Error("expected the append to be refused");
    expect(err.code).toBe(Code.Aborted);
    expect(err.rawMessage).toBe(`Wrong expected revision: 0 (stream ${stream}, actual 1)`);
    const [info] = err.findDetails(ErrorInfoSchema);
    expect(info.reason).toBe("WRONG_EXPECTED_REVISION");
    expect(info.metadata).toMatchObject({ expected_revision: "0", actual_revision: "1" });
  });
});

describe("curl-style Connect JSON over plain HTTP/1.1", () => {
  const post = (method: string, body: unknown) =>
    fetch(`${server.url}/eventstore.v1.EventStoreService/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("appends a JSON event without base64 and answers 64-bit numbers as strings", async () => {
    const res = await post("Append", { stream: "curl-1", events: [{ type: "Said", json: { text: "hi" } }] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.positions).toEqual([expect.stringMatching(/^\d+$/)]);
    const read = await post("GetStream", { stream: "curl-1" });
    expect(((await read.json()) as any).stream).toMatchObject({ name: "curl-1", revision: "0" });
  });

  it("answers errors as Connect JSON with the ErrorInfo readable", async () => {
    const res = await post("GetStream", { stream: "curl-missing" });
    expect(res.status).toBe(404);
    const body = (await res.json()) as any;
    expect(body.code).toBe("not_found");
    expect(body.details[0].type).toBe("google.rpc.ErrorInfo");
    expect(Buffer.from(body.details[0].value, "base64")).toEqual(
      Buffer.from(toBinary(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "STREAM_NOT_FOUND", domain: "eventstore.v1", metadata: { stream: "curl-missing" } }))),
    );
  });

  it.each(["ReadStream", "ReadAll", "Subscribe"])("answers plain JSON to the server-streaming %s with 415 and a body saying what it takes", async (method) => {
    const res = await post(method, { stream: "curl-1" });
    expect(res.status).toBe(415);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toContain(`${method} is a server-streaming method`);
    expect(body.message).toContain("application/connect+json");
  });

  it("reads a stream with the README's enveloped request, as curl sends it", async () => {
    const json = Buffer.from(JSON.stringify({ stream: "curl-1", dataEncoding: "DATA_ENCODING_JSON" }));
    const head = Buffer.alloc(5);
    head.writeUInt32BE(json.byteLength, 1);
    const res = await fetch(`${server.url}/eventstore.v1.EventStoreService/ReadStream`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: Buffer.concat([head, json]),
    });
    const bytes = Buffer.from(await res.arrayBuffer());
    const messages: { flags: number; json: unknown }[] = [];
    for (let at = 0; at < bytes.byteLength; ) {
      const length = bytes.readUInt32BE(at + 1);
      messages.push({ flags: bytes[at], json: JSON.parse(bytes.subarray(at + 5, at + 5 + length).toString()) });
      at += 5 + length;
    }
    expect(messages.map((m) => m.flags)).toEqual([0, 2]);
    expect(messages[0].json).toMatchObject({ events: [{ stream: "curl-1", type: "Said", json: { text: "hi" } }] });
    expect(messages[1].json).toEqual({});
  });
});

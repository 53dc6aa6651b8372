import { request as httpRequest } from "node:http";
import * as http2 from "node:http2";
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { ConfigError, loadConfig } from "../../src/server/config";
import { createGrpcJsClient, errorInfo, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startServerProcess, type ServerProcess } from "../support/server-process";

// Every method but the appends takes a request of at most --max-request-bytes (4 MiB by
// default), refused from its length before it is read, on every protocol: a read of 20 MB
// with an oversized filter used to be read and decoded whole before the filter was refused.

const MiB = 1024 * 1024;
const READ_ALL = "/eventstore.v1.EventStoreService/ReadAll";
const GET_STREAM = "/eventstore.v1.EventStoreService/GetStream";
const MAX_REQUEST_BYTES = String(4 * MiB);

let db: TestDatabase;
let server: ServerProcess;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  db = await createTestDatabase();
  // The built server in a process of its own: in Jest's module sandbox, Node's zlib errors are
  // not `instanceof Error`, and Connect would answer a compressed request past the limit INTERNAL.
  server = await startServerProcess({ DATABASE_URL: db.url });
  session = http2.connect(server.url);
  session.on("error", () => {});
});

afterAll(async () => {
  session?.destroy();
  await server?.stop();
  await db?.drop();
});

/** A protobuf string field 1 (ReadAll's and GetStream's first fields are not strings: field 15 is unknown, and skipped). */
function unknownField(bytes: number): Buffer {
  const tag = Buffer.from([(15 << 3) | 2]);
  const length: number[] = [];
  for (let n = bytes; ; n = Math.floor(n / 128)) {
    if (n < 128) {
      length.push(n);
      break;
    }
    length.push((n % 128) | 0x80);
  }
  return Buffer.concat([tag, Buffer.from(length), Buffer.alloc(bytes, 0x61)]);
}

function envelope(message: Buffer, compressed = false): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

interface Answer {
  ms: number;
  trailers: http2.IncomingHttpHeaders;
}

/** A gRPC call over HTTP/2 that sends `body`, and ends the request only if `end`. */
function h2(path: string, body: Buffer, options: { end: boolean; headers?: http2.OutgoingHttpHeaders }): Promise<Answer> {
  const started = Date.now();
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...options.headers });
  stream.on("error", () => {});
  let trailers: http2.IncomingHttpHeaders = {};
  stream.on("response", (h) => (trailers = { ...trailers, ...h }));
  stream.on("trailers", (t) => (trailers = { ...trailers, ...t }));
  stream.resume();
  if (options.end) stream.end(body);
  else stream.write(body);
  return new Promise((resolve) => stream.once("close", () => resolve({ ms: Date.now() - started, trailers })));
}

function limitOf(trailers: http2.IncomingHttpHeaders) {
  const status = trailers["grpc-status-details-bin"] as string;
  return errorInfo({ metadata: { get: () => [Buffer.from(status, "base64")] } } as unknown as grpc.ServiceError)?.metadata;
}

test("a ReadAll that says it is 20 MiB is refused from its envelope, naming the setting, before the rest is sent", async () => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(20 * MiB, 1);
  const answer = await h2(READ_ALL, Buffer.concat([head, Buffer.alloc(1000)]), { end: false });
  expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  expect(limitOf(answer.trailers)).toMatchObject({ field: "request", setting: "max-request-bytes", limit: MAX_REQUEST_BYTES, value: String(20 * MiB) });
  // Answered before the request could have been sent, let alone its 10 s body timeout.
  expect(answer.ms).toBeLessThan(2000);
});

test("a request's query string does not change its method's limit", async () => {
  const answer = await connectUnary(`${GET_STREAM}?x=1`, unknownField(5 * MiB), false);
  expect(connectLimit(answer.body)).toMatchObject({ code: "resource_exhausted", metadata: { setting: "max-request-bytes" } });
  const append = await connectUnary("/eventstore.v1.EventStoreService/Append?x=1", unknownField(5 * MiB), true);
  // Read whole (an append may be 23 MiB), then judged by the method: no stream named.
  expect(connectLimit(append.body).code).toBe("invalid_argument");
});

test("a unary call (the fast path) of 5 MiB is refused; one of 3 MiB is read and answered", async () => {
  const refused = await h2(GET_STREAM, envelope(unknownField(5 * MiB)), { end: true });
  expect(refused.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  expect(limitOf(refused.trailers)).toMatchObject({ setting: "max-request-bytes", limit: MAX_REQUEST_BYTES });
  // Under the limit, the request is the method's to judge: an empty stream name.
  const read = await h2(GET_STREAM, envelope(unknownField(3 * MiB)), { end: true });
  expect(read.trailers["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
});

test("a compressed request whose message inflates past the limit is refused", async () => {
  const bomb = gzipSync(unknownField(5 * MiB));
  expect(bomb.byteLength).toBeLessThan(64 * 1024);
  const answer = await h2(READ_ALL, envelope(bomb, true), { end: true, headers: { "grpc-encoding": "gzip" } });
  expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  expect(limitOf(answer.trailers)).toMatchObject({ field: "request", setting: "max-request-bytes", limit: MAX_REQUEST_BYTES, value: `more than ${MAX_REQUEST_BYTES}` });
});

/** A Connect unary call over HTTP/1.1; chunked (no Content-Length) unless `length`. */
function connectUnary(path: string, body: Buffer, length: boolean): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, server.url);
    const headers: Record<string, string> = { "content-type": "application/proto" };
    if (length) headers["content-length"] = String(body.byteLength);
    const req = httpRequest(url, { method: "POST", headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", (e) => (e.message.includes("EPIPE") || e.message.includes("ECONNRESET") ? undefined : reject(e)));
    // Sent in pieces, as a client streaming a large body would.
    for (let at = 0; at < body.byteLength; at += MiB) req.write(body.subarray(at, at + MiB));
    req.end();
  });
}

function connectLimit(body: string) {
  const error = JSON.parse(body) as { code: string; details?: { type: string; value: string }[] };
  const detail = error.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return { code: error.code, metadata: detail && fromBinary(ErrorInfoSchema, Buffer.from(detail.value, "base64")).metadata };
}

test.each([
  ["with a Content-Length", true],
  ["chunked, with none", false],
])("a Connect unary request of 5 MiB over HTTP/1.1, %s, is refused", async (_, length) => {
  const answer = await connectUnary(GET_STREAM, unknownField(5 * MiB), length);
  expect(connectLimit(answer.body)).toMatchObject({ code: "resource_exhausted", metadata: { setting: "max-request-bytes", limit: MAX_REQUEST_BYTES } });
});

test("appends keep their own, larger limit: an append of 6 MiB is stored", async () => {
  const client = createGrpcJsClient(`127.0.0.1:${server.port}`);
  try {
    const stream = `large-${randomUUID()}`;
    const events = Array.from({ length: 6 }, () => ({ id: randomUUID(), type: "Large", contentType: "application/octet-stream", data: Buffer.alloc(MiB - 1024) }));
    const answer = await unary(client, "Append", { stream, events });
    expect(answer.revision).toBe("5");
    expect((await unary(client, "GetStream", { stream })).stream.revision).toBe("5");
  } finally {
    client.close();
  }
});

test("the largest projection state fits, in Connect JSON too: --max-request-bytes may not be set below what it needs", async () => {
  const state = Buffer.from(JSON.stringify({ blob: "x".repeat(MiB - 20) }));
  expect(state.byteLength).toBeLessThanOrEqual(MiB);
  const body = JSON.stringify({ name: `p-${randomUUID()}`, initialState: state.toString("base64") });
  const answer = await fetch(new URL("/eventstore.v1.ProjectionService/CreateProjection", server.url), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  expect(answer.status).toBe(200);
  expect(() => loadConfig(["--max-request-bytes", String(MiB)], {})).toThrow(ConfigError);
  expect(() => loadConfig(["--max-request-bytes", String(MiB)], {})).toThrow(/--max-projection-state-bytes 1048576/);
  expect(loadConfig(["--max-request-bytes", String(MiB), "--max-projection-state-bytes", "65536", "--max-projection-streams", "100"], {}).connections.maxRequestBytes).toBe(MiB);
});

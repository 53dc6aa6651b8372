import { request as httpRequest } from "node:http";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb";
import { loadConfig } from "../../src/server/config";
import { errorInfo } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// A call's request message must arrive within --request-body-timeout-ms of its headers, on the
// fast path (plain gRPC unary) and through Connect (server streaming, Connect JSON, HTTP/1.1);
// a call that streams its requests (reflection) is not held to it.

const TIMEOUT_MS = 300;
const CHECK = "/grpc.health.v1.Health/Check";
const SUBSCRIBE = "/eventstore.v1.EventStoreService/Subscribe";
const APPEND = "/eventstore.v1.EventStoreService/Append";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  const defaults = loadConfig([], {});
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, {
    connections: { ...defaults.connections, requestBodyTimeoutMs: TIMEOUT_MS },
  });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

/** A length-prefixed gRPC message header that announces `length` bytes. */
function envelopeHead(length: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 1);
  return head;
}

function envelope(message: Uint8Array): Buffer {
  return Buffer.concat([envelopeHead(message.byteLength), message]);
}

interface H2Answer {
  ms: number;
  status: number;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The server reset the stream (the client never ends its side): with NO_ERROR, after its answer. */
  rstCode: number;
}

/** Sends headers and `first`, never ends the request, and waits for the server to end the call. */
async function stalledH2Call(path: string, contentType: string, first: Buffer): Promise<H2Answer> {
  const session = http2.connect(server.url);
  try {
    const started = Date.now();
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
    stream.write(first);
    let status = 0;
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => (status = Number(h[":status"])));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", () => {});
    await new Promise((resolve) => stream.once("close", resolve));
    return { ms: Date.now() - started, status, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode! };
  } finally {
    session.close();
  }
}

function detailsOf(trailers: http2.IncomingHttpHeaders) {
  const bin = trailers["grpc-status-details-bin"] as string;
  return errorInfo({ metadata: { get: () => [Buffer.from(bin, "base64")] } } as unknown as grpc.ServiceError);
}

function expectCutAtTimeout(ms: number) {
  expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 10);
  expect(ms).toBeLessThan(TIMEOUT_MS + 2000);
}

test("a unary gRPC call (fast path) whose message never arrives whole is ended with RESOURCE_EXHAUSTED at the timeout", async () => {
  // Announces 20 MiB, sends 64 KiB of it, then nothing.
  const answer = await stalledH2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(20 * 1024 * 1024), Buffer.alloc(64 * 1024)]));

  expectCutAtTimeout(answer.ms);
  expect(answer.status).toBe(200);
  expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  expect(decodeURIComponent(answer.trailers["grpc-message"] as string)).toMatch(/did not arrive within 300 ms/);
  expect(detailsOf(answer.trailers)).toMatchObject({ reason: "LIMIT_EXCEEDED", metadata: { setting: "request-body-timeout-ms", limit: "300" } });
  expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
});

test("a server-streaming call (Subscribe, through Connect) whose request never arrives whole is ended the same way", async () => {
  const answer = await stalledH2Call(SUBSCRIBE, "application/grpc", Buffer.concat([envelopeHead(1000), Buffer.alloc(10)]));

  expectCutAtTimeout(answer.ms);
  expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
  expect(detailsOf(answer.trailers)).toMatchObject({ reason: "LIMIT_EXCEEDED", metadata: { setting: "request-body-timeout-ms" } });
  expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
});

test("a Connect JSON call over HTTP/2 whose body never arrives whole answers 429 resource_exhausted", async () => {
  const answer = await stalledH2Call(CHECK, "application/json", Buffer.from('{"serv'));

  expectCutAtTimeout(answer.ms);
  expect(answer.status).toBe(429);
  expect(JSON.parse(answer.body.toString())).toMatchObject({ code: "resource_exhausted" });
  expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
});

/** Sends HTTP/1.1 headers announcing a long body and a little of it, then nothing. */
function stalledH1Call(path: string): Promise<{ ms: number; status?: number; body: string }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const req = httpRequest(`${server.url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": "100000" },
    });
    let status: number | undefined;
    let body = "";
    req.on("response", (res) => {
      status = res.statusCode;
      res.on("data", (d) => (body += d));
    });
    // Answered or not, the server closes the connection: its body cannot be skipped.
    req.on("close", () => resolve({ ms: Date.now() - started, status, body }));
    req.on("error", () => {});
    req.write('{"serv');
  });
}

test("a Connect JSON call over HTTP/1.1 whose body never arrives whole answers 429, and its connection is closed", async () => {
  const answer = await stalledH1Call(CHECK);

  expectCutAtTimeout(answer.ms);
  expect(answer.status).toBe(429);
  expect(JSON.parse(answer.body)).toMatchObject({ code: "resource_exhausted", message: expect.stringMatching(/did not arrive within 300 ms/) });
});

test("an append over HTTP/1.1 whose body never arrives whole answers 429, though the append check reads its body first", async () => {
  const answer = await stalledH1Call(APPEND);

  expectCutAtTimeout(answer.ms);
  expect(answer.status).toBe(429);
  expect(JSON.parse(answer.body)).toMatchObject({ code: "resource_exhausted", message: expect.stringMatching(/did not arrive within 300 ms/) });
});

test("a request that arrives in pieces within the timeout is served", async () => {
  const session = http2.connect(server.url);
  try {
    const stream = session.request({ ":method": "POST", ":path": CHECK, "content-type": "application/grpc", te: "trailers" });
    const message = envelope(new Uint8Array(0));
    stream.write(message.subarray(0, 2));
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS / 2));
    stream.end(message.subarray(2));
    const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.on("trailers", resolve));
    stream.resume();
    expect(trailers["grpc-status"]).toBe("0");
  } finally {
    session.close();
  }
});

test("a call that streams its requests (reflection) stays open past the timeout", async () => {
  const session = http2.connect(server.url);
  try {
    const stream = session.request({ ":method": "POST", ":path": REFLECTION, "content-type": "application/grpc", te: "trailers" });
    const responses: Buffer[] = [];
    stream.on("data", (d: Buffer) => responses.push(d));
    const ask = () => stream.write(envelope(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } }))));

    ask();
    await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS * 2));
    expect(stream.closed).toBe(false);
    ask();
    // Two answers of the same length, one for each question.
    const deadline = Date.now() + 5000;
    const whole = () => {
      const all = Buffer.concat(responses);
      return all.byteLength >= 5 && all.byteLength >= 2 * (5 + all.readUInt32BE(1));
    };
    while (!whole() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const all = Buffer.concat(responses);
    const length = all.readUInt32BE(1);
    const second = fromBinary(ServerReflectionResponseSchema, all.subarray(5 + length + 5, 2 * (5 + length)));
    expect(second.messageResponse.case).toBe("listServicesResponse");
    stream.close();
  } finally {
    session.close();
  }
});

test("the calls above, timed out or served, hold nothing of the server's request budget afterwards", async () => {
  // Each held what it had received until its timeout; all of it is given back.
  await until(() => server.bufferedRequestBytes() === 0, "the request budget to be empty", 5000);
  expect(server.bufferedRequestBytes()).toBe(0);
});

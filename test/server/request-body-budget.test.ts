import { request as httpRequest, type ClientRequest } from "node:http";
import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { ServerReflectionRequestSchema } from "../../gen/grpc/reflection/v1/reflection_pb";
import { loadConfig } from "../../src/server/config";
import { createGrpcJsClient, errorInfo, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// The server holds at most --max-buffered-request-bytes of requests still arriving, all calls
// together, on the fast path (plain gRPC unary) and through Connect (Connect JSON over HTTP/1.1
// and HTTP/2, gRPC server streaming, appends that the append check reads first). A call past it
// is refused at once with RESOURCE_EXHAUSTED; one that says up front it will not fit (its
// Content-Length, its envelope) is refused before it sends more; what a call held is given
// back when its request is parsed or the call ends. The body timeout is long here: stalled
// calls hold their bytes until the test lets them go.

const KiB = 1024;
const MiB = 1024 * KiB;
const BUDGET = 4 * MiB;
const CHECK = "/grpc.health.v1.Health/Check";
const SUBSCRIBE = "/eventstore.v1.EventStoreService/Subscribe";
const APPEND = "/eventstore.v1.EventStoreService/Append";
const REFLECTION = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
/** A refusal at once: well before the body timeout, which would refuse it too. */
const AT_ONCE_MS = 3000;

let db: TestDatabase;
let server: TestServer;
let session: http2.ClientHttp2Session;

beforeAll(async () => {
  db = await createTestDatabase();
  const defaults = loadConfig([], {});
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, {
    connections: { ...defaults.connections, requestBodyTimeoutMs: 30_000, maxBufferedRequestBytes: BUDGET },
  });
  session = http2.connect(server.url);
  session.on("error", () => {});
});

afterAll(async () => {
  session?.destroy();
  await server?.stop();
  await db?.drop();
});

afterEach(async () => {
  // Whatever a test left, the next starts from an empty budget.
  await until(() => server.bufferedRequestBytes() === 0, "the request budget to be empty");
});

function envelopeHead(length: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(length, 1);
  return head;
}

interface H2Answer {
  ms: number;
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  rstCode: number;
}

interface H2Call {
  stream: http2.ClientHttp2Stream;
  /** Settles when the server has ended the call (or the test cancelled it). */
  answer: Promise<H2Answer>;
}

/** Sends headers and `first`, and does not end the request. */
function h2Call(path: string, contentType: string, first: Buffer): H2Call {
  const started = Date.now();
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers" });
  stream.on("error", () => {});
  stream.write(first);
  let status = 0;
  let headers: http2.IncomingHttpHeaders = {};
  let trailers: http2.IncomingHttpHeaders = {};
  const chunks: Buffer[] = [];
  stream.on("response", (h) => ((headers = h), (status = Number(h[":status"]))));
  stream.on("trailers", (t) => (trailers = t));
  stream.on("data", (d: Buffer) => chunks.push(d));
  const answer = new Promise<H2Answer>((resolve) =>
    stream.once("close", () => resolve({ ms: Date.now() - started, status, headers, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode! })),
  );
  return { stream, answer };
}

/** Waits until the server holds at least `bytes` of requests: what the test sent has arrived. */
function held(bytes: number): Promise<number> {
  return until(() => server.bufferedRequestBytes() >= bytes && server.bufferedRequestBytes(), `the server to hold ${bytes} request bytes`);
}

function grpcErrorInfo(answer: H2Answer) {
  const bin = (answer.trailers["grpc-status-details-bin"] ?? answer.headers["grpc-status-details-bin"]) as string;
  return errorInfo({ metadata: { get: () => [Buffer.from(bin, "base64")] } } as unknown as grpc.ServiceError);
}

function grpcStatus(answer: H2Answer): string | undefined {
  return (answer.trailers["grpc-status"] ?? answer.headers["grpc-status"]) as string | undefined;
}

function connectErrorInfo(body: string) {
  const error = JSON.parse(body) as { code: string; details?: { type: string; value: string }[] };
  const detail = error.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return { code: error.code, info: detail && fromBinary(ErrorInfoSchema, Buffer.from(detail.value, "base64")) };
}

function expectBudgetRefusal(info: { reason: string; metadata: Record<string, string> } | undefined) {
  expect(info).toMatchObject({ reason: "LIMIT_EXCEEDED", metadata: { field: "request", setting: "max-buffered-request-bytes", limit: String(BUDGET) } });
}

function cancel(...calls: H2Call[]) {
  for (const c of calls) c.stream.close(http2.constants.NGHTTP2_CANCEL);
}

describe("the fast path (gRPC unary)", () => {
  test("a call whose next chunk would pass the budget is refused at once; others are served, and after the stalled ones end, a large one too", async () => {
    const first = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(MiB), Buffer.alloc(900 * KiB)]));
    const second = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(MiB), Buffer.alloc(900 * KiB)]));
    await held(1800 * KiB);
    // Says 2 MiB, which fits in what is left; sends a little of it.
    const third = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(2 * MiB), Buffer.alloc(100 * KiB)]));
    await held(1900 * KiB);
    // Meanwhile another takes 1 MiB more, so the rest of the third's 2 MiB no longer fits.
    const fourth = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(MiB), Buffer.alloc(900 * KiB)]));
    await held(2800 * KiB);
    const sentAt = Date.now();
    third.stream.write(Buffer.alloc(2 * MiB - 100 * KiB));
    const refused = await third.answer;

    expect(Date.now() - sentAt).toBeLessThan(AT_ONCE_MS);
    expect(grpcStatus(refused)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(decodeURIComponent(refused.trailers["grpc-message"] as string)).toMatch(/--max-buffered-request-bytes/);
    expectBudgetRefusal(grpcErrorInfo(refused));
    // Its stream is reset after the answer, as for a body that times out.
    expect(refused.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    // What it held is given back; the others still hold theirs.
    expect(server.bufferedRequestBytes()).toBeLessThan(3 * MiB);
    expect(server.bufferedRequestBytes()).toBeGreaterThanOrEqual(2700 * KiB);

    // A small call fits in what is left.
    const client = createGrpcJsClient(`127.0.0.1:${server.port}`);
    try {
      await unary(client, "Append", { stream: "budget-small", events: [{ type: "Small" }] });
      // Three events of 800 KiB do not fit while the stalled calls hold theirs ...
      const large = { stream: "budget-large", events: [0, 1, 2].map(() => ({ type: "Large", data: Buffer.alloc(800 * KiB, 0x61) })) };
      await expect(unary(client, "Append", large)).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
      // ... and do once they have ended.
      cancel(first, second, fourth);
      await Promise.all([first.answer, second.answer, fourth.answer]);
      await until(() => server.bufferedRequestBytes() === 0, "the stalled calls' bytes to be given back");
      const answer = await unary<{ revision: string; positions: string[] }>(client, "Append", large);
      expect(answer.revision).toBe("2");
      expect(answer.positions).toHaveLength(3);
    } finally {
      client.close();
    }
  });

  test("a message whose envelope says it will not fit in what is left is refused as soon as its envelope arrives", async () => {
    const stalled = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(2 * MiB), Buffer.alloc(1900 * KiB)]));
    await held(1900 * KiB);
    const refused = await h2Call(APPEND, "application/grpc", envelopeHead(3 * MiB)).answer;

    expect(refused.ms).toBeLessThan(AT_ONCE_MS);
    expect(grpcStatus(refused)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expectBudgetRefusal(grpcErrorInfo(refused));
    expect(grpcErrorInfo(refused)?.metadata.value).toBe(String(3 * MiB + 5));
    cancel(stalled);
  });

  test("a message larger than the whole budget is refused from its envelope, and one that fits is served", async () => {
    const refused = await h2Call(APPEND, "application/grpc", envelopeHead(BUDGET + 1)).answer;
    expect(grpcStatus(refused)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expectBudgetRefusal(grpcErrorInfo(refused));

    const ok = h2Call(CHECK, "application/grpc", envelopeHead(0));
    ok.stream.end();
    expect(grpcStatus(await ok.answer)).toBe("0");
  });
});

/** An HTTP/1.1 Connect call that declares `contentLength` and sends `first` of it, on its own connection. */
function h1Call(path: string, contentLength: number, first: Buffer): { req: ClientRequest; answer: Promise<{ ms: number; status?: number; body: string }> } {
  const started = Date.now();
  const req = httpRequest(`${server.url}${path}`, {
    method: "POST",
    agent: false,
    headers: { "content-type": "application/json", "content-length": String(contentLength) },
  });
  const answer = new Promise<{ ms: number; status?: number; body: string }>((resolve) => {
    let status: number | undefined;
    let body = "";
    req.on("response", (res) => {
      status = res.statusCode;
      res.on("data", (d) => (body += d));
    });
    req.on("close", () => resolve({ ms: Date.now() - started, status, body }));
    req.on("error", () => {});
  });
  req.write(first);
  return { req, answer };
}

/** The start of a JSON request with a long string, so that any prefix of it is valid so far. */
function jsonStart(bytes: number): Buffer {
  return Buffer.concat([Buffer.from('{"service":"'), Buffer.alloc(bytes, 0x61)]);
}

describe("through Connect", () => {
  test("an HTTP/1.1 body whose Content-Length will not fit in what is left answers 429 at once, naming the setting", async () => {
    const stalled = [h1Call(CHECK, 2 * MiB, jsonStart(900 * KiB)), h1Call(CHECK, 2 * MiB, jsonStart(900 * KiB))];
    await held(1800 * KiB);
    const answer = await h1Call(CHECK, 3 * MiB, Buffer.from("{")).answer;

    expect(answer.ms).toBeLessThan(AT_ONCE_MS);
    expect(answer.status).toBe(429);
    const { code, info } = connectErrorInfo(answer.body);
    expect(code).toBe("resource_exhausted");
    expectBudgetRefusal(info);
    for (const s of stalled) s.req.destroy();
  });

  test("an HTTP/1.1 append whose Content-Length will not fit answers 429 at once, though the append check reads its body first", async () => {
    const stalled = h1Call(CHECK, 3500 * KiB, jsonStart(3 * MiB));
    await held(3 * MiB);
    const answer = await h1Call(APPEND, 2 * MiB, jsonStart(100 * KiB)).answer;

    expect(answer.ms).toBeLessThan(AT_ONCE_MS);
    expect(answer.status).toBe(429);
    expectBudgetRefusal(connectErrorInfo(answer.body).info);
    stalled.req.destroy();
  });

  test("HTTP/1.1 bodies that say they are large are not allocated at that size before they arrive", async () => {
    // Connect would allocate each Content-Length at once: 20 x 3 MiB, for 20 x 10 KiB sent.
    const before = process.memoryUsage().arrayBuffers;
    const stalled = Array.from({ length: 20 }, () => h1Call(CHECK, 3 * MiB, jsonStart(10 * KiB)));
    await held(20 * 10 * KiB);
    await new Promise((r) => setTimeout(r, 200));

    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(20 * MiB);
    expect(server.bufferedRequestBytes()).toBeLessThan(MiB);
    for (const s of stalled) s.req.destroy();
  });

  test("a Connect JSON body over HTTP/2 (no Content-Length) that passes the budget answers 429 at once, its stream reset", async () => {
    const stalled = h2Call(CHECK, "application/json", jsonStart(3 * MiB));
    await held(3 * MiB);
    const call = h2Call(CHECK, "application/json", jsonStart(2 * MiB));
    const answer = await call.answer;

    expect(answer.ms).toBeLessThan(AT_ONCE_MS);
    expect(answer.status).toBe(429);
    expectBudgetRefusal(connectErrorInfo(answer.body.toString()).info);
    expect(answer.rstCode).toBe(http2.constants.NGHTTP2_NO_ERROR);
    cancel(stalled);
  });

  test("a server stream's request (Subscribe) whose envelope will not fit is refused as soon as the envelope arrives", async () => {
    const stalled = h2Call(APPEND, "application/grpc", Buffer.concat([envelopeHead(3 * MiB), Buffer.alloc(2 * MiB)]));
    await held(2 * MiB);
    const answer = await h2Call(SUBSCRIBE, "application/grpc", envelopeHead(3 * MiB)).answer;

    expect(answer.ms).toBeLessThan(AT_ONCE_MS);
    expect(grpcStatus(answer)).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expectBudgetRefusal(grpcErrorInfo(answer));
    cancel(stalled);
  });
});

test("a stream of requests (reflection) holds only the message it is receiving, not those it has sent", async () => {
  const ask = Buffer.from(toBinary(ServerReflectionRequestSchema, create(ServerReflectionRequestSchema, { messageRequest: { case: "listServices", value: "" } })));
  const message = Buffer.concat([envelopeHead(ask.byteLength), ask]);
  const call = h2Call(REFLECTION, "application/grpc", Buffer.concat([message, message, message]));
  const answers: Buffer[] = [];
  call.stream.on("data", (d: Buffer) => answers.push(d));
  // Three answers: the three questions were parsed, and their bytes given back.
  await until(() => {
    const all = Buffer.concat(answers);
    return all.byteLength >= 5 && all.byteLength >= 3 * (5 + all.readUInt32BE(1));
  }, "three answers");
  await until(() => server.bufferedRequestBytes() === 0, "the parsed messages' bytes to be given back");
  expect(call.stream.closed).toBe(false);

  // A fourth, in pieces that split its envelope: followed all the same, and answered.
  for (const piece of [message.subarray(0, 2), message.subarray(2, 7), message.subarray(7)]) {
    call.stream.write(piece);
    await new Promise((r) => setTimeout(r, 50));
  }
  await until(() => {
    const all = Buffer.concat(answers);
    return all.byteLength >= 4 * (5 + all.readUInt32BE(1));
  }, "a fourth answer");
  await until(() => server.bufferedRequestBytes() === 0, "the fourth message's bytes to be given back");

  // A fifth, larger message is held at the size its envelope says (Connect allocates that
  // much at once) while the stream waits for the rest of it.
  call.stream.write(Buffer.concat([envelopeHead(2 * MiB), Buffer.alloc(MiB)]));
  expect(await held(2 * MiB)).toBeLessThan(2 * MiB + 64 * KiB);
  cancel(call);
});

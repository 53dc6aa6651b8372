import * as http2 from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
  type HealthCheckResponse,
} from "../../gen/grpc/health/v1/health_pb";
import { withSpecGrpcMessage } from "../../src/server/grpc-message-encoding";
import { createGrpcUnaryFastPath } from "../../src/server/grpc-unary-fast-path";
import { listen, type Listener } from "../../src/server/listen";
import { errorInfo } from "../support/grpc-js-client";
import { until } from "../support/until";

const READ_MAX_BYTES = 4096;
const SIZE = { maxBytes: READ_MAX_BYTES, setting: "max-request-bytes" } as const;
const METHOD = "/grpc.health.v1.Health/Check";

// One unary method whose behaviour the request's `service` field picks, served the way the
// server serves: the fast path first, Connect for the rest.
let listener: Listener;
let shutdown: AbortController;
let fastCalls = 0;
let implCalls = 0;
const logged: string[] = [];
const recordingLogger = { info() {}, warn() {}, error: (message: string) => void logged.push(message) };
const abortReasons: unknown[] = [];

async function check(req: HealthCheckRequest, ctx: HandlerContext) {
  implCalls++;
  switch (req.service) {
    case "unwritable":
      throw new ConnectError("a lone surrogate \uD800 in the message", Code.FailedPrecondition);
    case "crash":
      throw new Error("relation eventstore.events does not exist");
    case "refused":
      throw new ConnectError("Wrong expected revision: 3 (stream a/b, actual 5)", Code.Aborted, undefined, [
        { desc: ErrorInfoSchema, value: { reason: "WRONG_EXPECTED_REVISION", domain: "test", metadata: { stream: "a/b" } } },
      ]);
    case "metadata":
      ctx.responseHeader.set("x-answer-header", "h");
      ctx.responseTrailer.set("x-answer-trailer", "t");
      return { status: ctx.requestHeader.get("x-asked") === "yes" ? ServingStatus.SERVING : ServingStatus.NOT_SERVING };
    case "patient":
      // Waits, heedless of its signal, then says whether the signal was aborted meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 150));
      return { status: ctx.signal.aborted ? ServingStatus.NOT_SERVING : ServingStatus.SERVING };
    case "slow":
      await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
      abortReasons.push(ctx.signal.reason);
      throw ctx.signal.reason;
    default:
      return create(HealthCheckResponseSchema, { status: ServingStatus.SERVING });
  }
}

const requestSizes = { of: () => SIZE, appends: SIZE, largest: READ_MAX_BYTES };

beforeEach(async () => {
  shutdown = new AbortController();
  fastCalls = 0;
  implCalls = 0;
  logged.length = 0;
  abortReasons.length = 0;
  const unary = createGrpcUnaryFastPath({ sizes: requestSizes, shutdown: shutdown.signal, log: recordingLogger });
  const connect = withSpecGrpcMessage(
    connectNodeAdapter({
      routes: (router) => unary.wrap(router).service(Health, { check }),
      readMaxBytes: READ_MAX_BYTES,
      shutdownSignal: shutdown.signal,
    }) as Parameters<typeof withSpecGrpcMessage>[0],
  );
  listener = await listen(
    (req, res) => {
      if (unary.serve(req, res)) fastCalls++;
      else connect(req, res);
    },
    { host: "127.0.0.1", port: 0 },
  );
});

afterEach(async () => {
  shutdown.abort();
  await listener.close(1000);
});

// `compressed`: grpc-js gzips the request, which the fast path leaves to Connect.
function client(compressed: boolean): grpc.Client {
  return new grpc.Client(`127.0.0.1:${listener.port}`, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
    ...(compressed ? { "grpc.default_compression_algorithm": 2 } : {}),
  });
}

interface Answer {
  response?: HealthCheckResponse;
  error?: grpc.ServiceError;
  header?: grpc.Metadata;
}

function callCheck(c: grpc.Client, service: string, options: { deadlineMs?: number; metadata?: grpc.Metadata } = {}) {
  let header: grpc.Metadata | undefined;
  let call!: grpc.ClientUnaryCall;
  const answer = new Promise<Answer>((resolve) => {
    call = c.makeUnaryRequest(
      METHOD,
      (r: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, r)),
      (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
      create(HealthCheckRequestSchema, { service }),
      options.metadata ?? new grpc.Metadata(),
      options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs },
      (error, response) => resolve({ error: error ?? undefined, response, header }),
    );
    call.on("metadata", (m) => (header = m));
  });
  return { call, answer };
}

describe("unary gRPC calls on the fast path", () => {
  test("plain gRPC unary calls take the fast path and compressed ones go to Connect, with the same answer", async () => {
    const plain = client(false);
    const gzip = client(true);
    const fast = await callCheck(plain, "").answer;
    expect(fastCalls).toBe(1);
    const slow = await callCheck(gzip, "").answer;
    expect(fastCalls).toBe(1);
    expect(fast.error).toBeUndefined();
    expect(fast.response?.status).toBe(ServingStatus.SERVING);
    expect(slow.response?.status).toBe(ServingStatus.SERVING);
    plain.close();
    gzip.close();
  });

  test("an error keeps its code, its message as written and its ErrorInfo, as through Connect", async () => {
    const answers = await Promise.all([false, true].map(async (compressed) => (await callCheck(client(compressed), "refused").answer).error!));
    expect(fastCalls).toBe(1);
    for (const error of answers) {
      expect(error.code).toBe(grpc.status.ABORTED);
      expect(error.details).toBe("Wrong expected revision: 3 (stream a/b, actual 5)");
      expect(errorInfo(error)).toMatchObject({ reason: "WRONG_EXPECTED_REVISION", metadata: { stream: "a/b" } });
    }
  });

  test("an unexpected failure answers INTERNAL without its text", async () => {
    const { error } = await callCheck(client(false), "crash").answer;
    expect(fastCalls).toBe(1);
    expect(error?.code).toBe(grpc.status.INTERNAL);
    expect(error?.details).toBe("internal error");
  });

  test("request headers reach the implementation, and its response headers and trailers reach the client", async () => {
    const metadata = new grpc.Metadata();
    metadata.set("x-asked", "yes");
    const { response, error, header } = await callCheck(client(false), "metadata", { metadata }).answer;
    expect(fastCalls).toBe(1);
    expect(response?.status).toBe(ServingStatus.SERVING);
    expect(header?.get("x-answer-header")).toEqual(["h"]);
    expect(error).toBeUndefined();
  });

  test("a response trailer set by the implementation reaches the client", async () => {
    const c = client(false);
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = c.makeUnaryRequest(
        METHOD,
        (r: HealthCheckRequest) => Buffer.from(toBinary(HealthCheckRequestSchema, r)),
        (b: Buffer) => fromBinary(HealthCheckResponseSchema, b),
        create(HealthCheckRequestSchema, { service: "metadata" }),
        () => {},
      );
      call.on("status", resolve);
    });
    expect(status.code).toBe(grpc.status.OK);
    expect(status.metadata.get("x-answer-trailer")).toEqual(["t"]);
  });

  test("a request over the size limit is refused with RESOURCE_EXHAUSTED, from its envelope, naming the setting", async () => {
    const { error } = await callCheck(client(false), "x".repeat(READ_MAX_BYTES + 1)).answer;
    expect(fastCalls).toBe(1);
    expect(implCalls).toBe(0);
    expect(error?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(error?.details).toBe(`request: a message of ${READ_MAX_BYTES + 4} bytes is larger than this method takes (${READ_MAX_BYTES}, from --max-request-bytes)`);
  });

  test("a message that says it is over the limit is refused before the rest of it arrives", async () => {
    const head = Buffer.from([0, 0, 0, 0x40, 0]); // a message of 16,384 bytes, of which none follows
    const answer = await rawCall(head, {}, { endStream: false });
    expect(fastCalls).toBe(1);
    expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
    expect(implCalls).toBe(0);
  });

  test("a message of exactly the size limit is taken", async () => {
    const answer = await rawCall(message("x".repeat(READ_MAX_BYTES - 3)), {}); // tag and a two-byte length
    expect(fastCalls).toBe(1);
    expect(answer.trailers["grpc-status"]).toBe("0");
    expect(implCalls).toBe(1);
  });

  test("a request whose envelope arrives in pieces is read whole", async () => {
    const body = message("");
    const answer = await rawCall(body, {}, { pieces: [1, 2, 3, body.length] });
    expect(fastCalls).toBe(1);
    expect(answer.trailers["grpc-status"]).toBe("0");
    expect(implCalls).toBe(1);
  });

  test("bytes after the message: a whole second envelope is a second message, fewer are an incomplete envelope", async () => {
    const one = message("");
    const second = await rawCall(Buffer.concat([one, one]), {});
    expect(second.trailers["grpc-status"]).toBe(String(grpc.status.UNIMPLEMENTED));
    const partial = await rawCall(Buffer.concat([one, Buffer.from([0, 0])]), {});
    expect(partial.trailers["grpc-status"]).toBe(String(grpc.status.INVALID_ARGUMENT));
    expect(decodeURIComponent(String(partial.trailers["grpc-message"]))).toBe("protocol error: incomplete envelope");
    expect(fastCalls).toBe(2);
    expect(implCalls).toBe(0);
  });

  test("a deadline that passes aborts the implementation's signal; the answer is the implementation's", async () => {
    // Without a client-side deadline: what comes back is the server's doing.
    const refused = await rawCall(message("slow"), { "grpc-timeout": "200m" });
    expect(refused.trailers["grpc-status"]).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    const reason = await until(() => abortReasons[0], "the implementation to see the deadline");
    expect((reason as ConnectError).code).toBe(Code.DeadlineExceeded);

    const answered = await rawCall(message("patient"), { "grpc-timeout": "50m" });
    expect(answered.trailers["grpc-status"]).toBe("0");
    expect(fromBinary(HealthCheckResponseSchema, answered.body.subarray(5)).status).toBe(ServingStatus.NOT_SERVING);
    expect(fastCalls).toBe(2);
  });

  test("a client that cancels aborts the implementation's signal", async () => {
    const { call, answer } = callCheck(client(false), "slow");
    await until(() => fastCalls === 1, "the call to arrive");
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    expect((await answer).error?.code).toBe(grpc.status.CANCELLED);
    const reason = await until(() => abortReasons[0], "the implementation to see the cancel");
    expect((reason as ConnectError).code).toBe(Code.Canceled);
  });

  test("the server's shutdown aborts the signals of the calls in flight, as UNAVAILABLE", async () => {
    const { answer } = callCheck(client(false), "slow");
    await until(() => fastCalls === 1, "the call to arrive");
    await new Promise((r) => setTimeout(r, 50));
    shutdown.abort(); // without a reason, as the server aborts it
    expect((await answer).error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(abortReasons).toHaveLength(1);
  });

  test("a deadline already passed when the request has arrived: the implementation is not called", async () => {
    const answer = await rawCall(message(""), { "grpc-timeout": "0m" });
    expect(answer.trailers["grpc-status"]).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    expect(implCalls).toBe(0);
  });

  test("a deadline beyond what a timer can wait (30 days) neither aborts nor cuts the call short", async () => {
    const { error, response } = await callCheck(client(false), "patient", { deadlineMs: 30 * 24 * 3600 * 1000 }).answer;
    expect(fastCalls).toBe(1);
    expect(error).toBeUndefined();
    expect(response?.status).toBe(ServingStatus.SERVING);
  });

  test("a client that resets before its request is complete: the implementation is not called", async () => {
    const session = http2.connect(`http://127.0.0.1:${listener.port}`);
    const stream = session.request({ ":method": "POST", ":path": METHOD, "content-type": "application/grpc" }, { endStream: false });
    stream.on("error", () => {});
    stream.write(message(""));
    await until(() => fastCalls === 1, "the call to arrive");
    stream.destroy(); // RST_STREAM without END_STREAM (close() would end the request first)
    await new Promise((r) => setTimeout(r, 200));
    expect(implCalls).toBe(0);
    session.close();
  });

  test("an error whose message cannot be written still ends the call, as INTERNAL", async () => {
    const { error } = await callCheck(client(false), "unwritable").answer;
    expect(fastCalls).toBe(1);
    expect(error?.code).toBe(grpc.status.INTERNAL);
    expect(error?.details).toBe("internal error");
    expect(logged).toEqual([]); // answered with trailers, not reset after a failure
  });
  test("methods registered with interceptors stay with Connect, which runs them", async () => {
    let intercepted = 0;
    const unary = createGrpcUnaryFastPath({ sizes: requestSizes, shutdown: shutdown.signal, log: recordingLogger });
    const connect = connectNodeAdapter({
      routes: (router) =>
        unary.wrap(router).service(Health, { check }, {
          interceptors: [(next) => (req) => {
            intercepted++;
            return next(req);
          }],
        }),
    }) as Parameters<typeof withSpecGrpcMessage>[0];
    let served = 0;
    const other = await listen((req, res) => (unary.serve(req, res) ? served++ : connect(req, res)), { host: "127.0.0.1", port: 0 });
    try {
      const c = new grpc.Client(`127.0.0.1:${other.port}`, grpc.credentials.createInsecure());
      const { error } = await callCheck(c, "").answer;
      c.close();
      expect(error).toBeUndefined();
      expect(served).toBe(0);
      expect(intercepted).toBe(1);
    } finally {
      await other.close(1000);
    }
  });
});

/** A HealthCheckRequest in its gRPC envelope. */
function message(service: string): Buffer {
  const bytes = toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema, { service }));
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/** A call made with node:http2 itself, for what a gRPC library would not send. */
async function rawCall(body: Buffer, headers: Record<string, string>, options: { endStream?: boolean; pieces?: number[] } = {}) {
  const session = http2.connect(`http://127.0.0.1:${listener.port}`);
  try {
    const stream = session.request({ ":method": "POST", ":path": METHOD, "content-type": "application/grpc", te: "trailers", ...headers });
    return await new Promise<{ trailers: http2.IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      const done = () => resolve({ trailers, body: Buffer.concat(chunks) });
      stream.on("response", (h) => (trailers = { ...trailers, ...h }));
      stream.on("trailers", (t) => {
        trailers = { ...trailers, ...t };
        done();
      });
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("close", done);
      stream.on("error", reject);
      if (options.pieces) {
        // Each piece in a write of its own, a moment apart.
        let from = 0;
        const next = (i: number) => {
          const to = options.pieces![i];
          stream.write(body.subarray(from, to));
          from = to;
          if (i + 1 < options.pieces!.length) setTimeout(() => next(i + 1), 10);
          else stream.end();
        };
        next(0);
      } else if (options.endStream === false) stream.write(body);
      else stream.end(body);
    });
  } finally {
    session.close();
  }
}

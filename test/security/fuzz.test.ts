import { connect, constants, type ClientHttp2Session } from "node:http2";
import { performance } from "node:perf_hooks";
import { fromJson, toBinary, ScalarType, type DescField, type DescMessage, type DescMethod, type JsonValue } from "@bufbuild/protobuf";
import fc from "fast-check";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { ProjectionService } from "../../gen/eventstore/v1/projections_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

/**
 * Every RPC driven with random requests: well-formed ones built from the request's descriptor
 * (valid, near-valid, extreme values), their encodings mutated byte by byte, and garbage, over
 * gRPC (binary) and Connect (JSON). The server must stay up, answer each call with a code that
 * is not INTERNAL or UNKNOWN (a client's mistake is never the server's), write nothing for a call
 * it refused, and answer a health check within 100 ms throughout.
 *
 * Bounded: FUZZ_RUNS calls per method and wire (default 40, about 20 s in all); set FUZZ_RUNS=500
 * for a longer run.
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
// A fixed seed by default, so that `npm test` is the same run every time; FUZZ_SEED=random (or a
// number) explores.
const SEED = process.env.FUZZ_SEED === "random" ? undefined : Number(process.env.FUZZ_SEED ?? 20261207);
const CALL_TIMEOUT_MS = 3000;
const HEALTH_BUDGET_MS = 100;
const WRITES = new Set(["Append", "MultiStreamAppend", "DeleteStream", "TombstoneStream", "CommitCheckpoint"]);

let db: TestDatabase;
let server: TestServer;
let session: ClientHttp2Session;
const healthLatencies: number[] = [];
let healthTimer: NodeJS.Timeout | undefined;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  session = connect(server.url);
  // Something to read, delete and project: a few streams and events.
  await server.store.append([{ stream: "acct-1", expected: "any", events: [event(), event()] }]);
  await server.store.append([{ stream: "acct-2", expected: "any", events: [event()] }]);
  const check = async () => {
    const started = performance.now();
    const { status } = await grpcCall(HEALTH_CHECK_PATH, envelope(new Uint8Array()));
    healthLatencies.push(status === 0 ? performance.now() - started : Infinity);
    healthTimer = setTimeout(check, 50);
  };
  void check();
});

afterAll(async () => {
  if (healthTimer) clearTimeout(healthTimer);
  session?.close();
  await server?.stop();
  await db?.drop();
});

const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

function event() {
  return { id: crypto.randomUUID(), type: "T", data: new TextEncoder().encode("{}"), contentType: "application/json", metadata: {} };
}

/** A 5-byte gRPC envelope around a message. */
function envelope(message: Uint8Array): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

interface Answer {
  status: number | undefined;
  /** HTTP status, for Connect. */
  http: number;
  body: string;
}

/** A raw gRPC call: the body as given; its status from the trailers (or headers). */
function grpcCall(path: string, body: Buffer): Promise<Answer> {
  return rawCall(path, body, { "content-type": "application/grpc", te: "trailers" });
}

function rawCall(path: string, body: Buffer, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    let status: number | undefined;
    let http = 0;
    const chunks: Buffer[] = [];
    let bytes = 0;
    // Server streams (reads, subscriptions) may go on for ever: a few messages are enough.
    const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), CALL_TIMEOUT_MS);
    stream.on("response", (h) => {
      http = Number(h[":status"]);
      if (h["grpc-status"] !== undefined) status = Number(h["grpc-status"]);
    });
    stream.on("trailers", (t) => {
      if (t["grpc-status"] !== undefined) status = Number(t["grpc-status"]);
    });
    stream.on("data", (c: Buffer) => {
      bytes += c.byteLength;
      if (bytes < 64 * 1024) chunks.push(c);
      else stream.close(constants.NGHTTP2_CANCEL);
    });
    stream.on("close", () => {
      clearTimeout(timer);
      resolve({ status, http, body: Buffer.concat(chunks).toString("latin1") });
    });
    stream.on("error", reject);
    stream.end(body);
  });
}

// ---- Requests from descriptors, as proto3 JSON -------------------------------------------------

const text = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom("", "acct-1", "acct-2", "acct-new", "sub-1", "proj-1", "T", "application/json") },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 40 }) },
  { weight: 1, arbitrary: fc.constantFrom("\u0000", "\u0001x", "a".repeat(300), "\ud800", "-", "$>", "0@acct-1", "(a+)+$", "*") },
);
const uint64 = fc.oneof(
  fc.constantFrom("0", "1", "2", "9223372036854775807", "9223372036854775808", "18446744073709551615"),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
);
const int32 = fc.oneof(fc.constantFrom(0, 1, -1, 2147483647, -2147483648), fc.integer());
const json: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<JsonValue>;

function scalar(type: ScalarType): fc.Arbitrary<JsonValue> {
  switch (type) {
    case ScalarType.STRING:
      return text;
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b).toString("base64"));
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return uint64;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return fc.oneof(fc.constantFrom(0, 1, 1000, 4294967295), fc.nat());
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom("NaN", "Infinity"));
    default:
      return int32;
  }
}

function message(desc: DescMessage, depth: number): fc.Arbitrary<JsonValue> {
  switch (desc.typeName) {
    case "google.protobuf.Struct":
      return fc.dictionary(text, json, { maxKeys: 4 });
    case "google.protobuf.Value":
      return json;
    case "google.protobuf.Timestamp":
      return fc.oneof(fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom("1970-01-01T00:00:00Z"));
  }
  if (depth > 3) return fc.constant({});
  // Each field present or not; of a oneof, at most one member.
  const members = desc.fields.filter((f) => !f.oneof).map((f) => fc.option(field(f, depth).map((v) => [f.jsonName, v] as const), { nil: undefined }));
  const oneofs = desc.oneofs.map((o) => fc.option(fc.oneof(...o.fields.map((f) => field(f, depth).map((v) => [f.jsonName, v] as const))), { nil: undefined }));
  return fc.tuple(...members, ...oneofs).map((entries) => Object.fromEntries(entries.filter((e) => e !== undefined)) as JsonValue);
}

function field(f: DescField, depth: number): fc.Arbitrary<JsonValue> {
  const one = (): fc.Arbitrary<JsonValue> => {
    if (f.fieldKind === "list") {
      if (f.listKind === "scalar") return scalar(f.scalar);
      if (f.listKind === "enum") return enumValue(f.enum.values.map((v) => v.name));
      return message(f.message, depth + 1);
    }
    if (f.fieldKind === "map") return scalar(f.mapKind === "scalar" ? f.scalar : ScalarType.INT32);
    if (f.fieldKind === "scalar") return scalar(f.scalar);
    if (f.fieldKind === "enum") return enumValue(f.enum.values.map((v) => v.name));
    return message(f.message, depth + 1);
  };
  if (f.fieldKind === "list") return fc.array(one(), { maxLength: 4 });
  if (f.fieldKind === "map") return fc.dictionary(text, one(), { maxKeys: 3 });
  return one();
}

function enumValue(names: string[]): fc.Arbitrary<JsonValue> {
  return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names) }, { weight: 1, arbitrary: fc.integer({ min: -5, max: 100 }) });
}

/** Bytes on the wire: a request's encoding, that encoding mutated, or garbage. */
function wireBytes(method: DescMethod): fc.Arbitrary<Buffer> {
  const encoded = message(method.input, 0).map((j) => {
    try {
      return toBinary(method.input, fromJson(method.input, j));
    } catch {
      return new Uint8Array(); // JSON the schema refuses (an unknown enum number, say): the empty request
    }
  });
  const mutated = fc.tuple(encoded, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat()).map(([bytes, flips, cut]) => {
    const b = Buffer.from(bytes);
    for (const [at, value] of flips) if (b.length > 0) b[at % b.length] = value;
    return b.subarray(0, b.length === 0 ? 0 : b.length - (cut % Math.max(1, Math.min(3, b.length))));
  });
  const garbage = fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b));
  const framed = fc.oneof({ weight: 3, arbitrary: encoded.map((b) => envelope(b)) }, { weight: 3, arbitrary: mutated.map(envelope) }, { weight: 1, arbitrary: garbage.map(envelope) });
  // And envelopes that lie: a length that is not the body's, a compressed flag nobody negotiated.
  const lying = fc.tuple(garbage, fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 2, 255)).map(([b, length, flag]) => {
    const head = Buffer.alloc(5);
    head[0] = flag;
    head.writeUInt32BE(length, 1);
    return Buffer.concat([head, b]);
  });
  return fc.oneof({ weight: 6, arbitrary: framed }, { weight: 1, arbitrary: lying }, { weight: 1, arbitrary: garbage });
}

/** Connect JSON bodies: the request as JSON, or that JSON mutated, or not JSON at all. */
function jsonBody(method: DescMethod): fc.Arbitrary<Buffer> {
  const valid = message(method.input, 0).map((j) => JSON.stringify(j));
  const broken = fc.tuple(valid, fc.nat(), fc.string({ maxLength: 3 })).map(([s, at, insert]) => s.slice(0, at % (s.length + 1)) + insert + s.slice(at % (s.length + 1)));
  return fc.oneof({ weight: 4, arbitrary: valid }, { weight: 2, arbitrary: broken }, { weight: 1, arbitrary: fc.string({ unit: "binary" }) }).map((s) => Buffer.from(s));
}

const METHODS = [...EventStoreService.methods, ...ProjectionService.methods];

/** gRPC codes a client's request may answer; INTERNAL (13) and UNKNOWN (2) never. */
const CLIENT_CODES = new Set([0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16]);

describe.each(METHODS.map((m) => [`${m.parent.typeName.split(".").pop()}/${m.name}`, m] as const))("%s", (_name, method) => {
  const path = `/${method.parent.typeName}/${method.name}`;

  test("over gRPC: every answer a client's code, nothing written when refused", async () => {
    await fc.assert(
      fc.asyncProperty(wireBytes(method), async (body) => {
        const head = WRITES.has(method.name) ? await server.store.head() : undefined;
        const answer = await grpcCall(path, body);
        // A stream the test cut (CALL_TIMEOUT_MS, 64 KiB) ended without a status: it was serving.
        if (answer.status === undefined) return;
        expect(CLIENT_CODES).toContain(answer.status);
        if (head !== undefined && answer.status !== 0 && method.name.includes("Append")) expect(await server.store.head()).toBe(head);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  test("over Connect JSON: every answer a client's code, never a 500", async () => {
    const streaming = method.methodKind !== "unary";
    await fc.assert(
      fc.asyncProperty(jsonBody(method), async (body) => {
        const head = WRITES.has(method.name) ? await server.store.head() : undefined;
        // Streaming methods take enveloped JSON (application/connect+json), unary plain JSON.
        const answer = streaming
          ? await rawCall(path, envelope(body), { "content-type": "application/connect+json" })
          : await rawCall(path, body, { "content-type": "application/json" });
        expect(answer.http).not.toBe(500);
        expect(answer.body).not.toMatch(/"code":"(internal|unknown)"/);
        if (head !== undefined && answer.http !== 200 && method.name.includes("Append")) expect(await server.store.head()).toBe(head);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

test("health answered within 100 ms throughout (p99 and worst)", () => {
  const sorted = [...healthLatencies].sort((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
  process.stdout.write(`fuzz: ${sorted.length} health checks, p99 ${p99.toFixed(1)} ms, worst ${sorted.at(-1)!.toFixed(1)} ms\n`);
  expect(sorted.length).toBeGreaterThan(10);
  expect(p99).toBeLessThan(HEALTH_BUDGET_MS);
});

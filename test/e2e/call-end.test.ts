import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../../src/domain";
import { createGrpcJsClient } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// How a call that does not end of itself ends: a subscription (which never does), or a read cut
// short. Past its deadline: DEADLINE_EXCEEDED; cancelled: CANCELLED; never OK, which tells a Go
// consumer (Recv answers io.EOF) that its subscription ended normally, or a reader that it has
// every event. And a client that goes away is not a server error: nothing is logged as one.

let db: TestDatabase;
let server: TestServer;
let session: ClientHttp2Session;
const errors: string[] = [];
const log: Logger = { info() {}, warn() {}, error: (message, fields) => errors.push(`${message} ${JSON.stringify(fields)}`) };

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, {}, log);
  session = connect(server.url);
  session.on("error", () => {});
  await server.store.append([{ stream: "order-1", expected: "any", events: [{ id: crypto.randomUUID(), type: "Placed", contentType: "application/json", data: Buffer.from("{}"), metadata: {} }] }]);
});

afterAll(async () => {
  session?.close();
  await server?.stop();
  await db?.drop();
});

/** A gRPC call made by hand, so that the status is the server's (a client library reports its own deadline). */
function rawCall(path: string, body: Uint8Array, headers: Record<string, string> = {}): Promise<{ status: string | undefined; message: string | undefined; messages: number }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers", ...headers });
    const envelope = Buffer.alloc(5 + body.byteLength);
    envelope.writeUInt32BE(body.byteLength, 1);
    envelope.set(body, 5);
    stream.end(envelope);
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    let bytes = 0;
    stream.on("response", (h) => (head = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => (bytes += chunk.byteLength));
    stream.on("error", reject);
    stream.on("close", () => {
      const end = trailers ?? head;
      resolve({ status: end["grpc-status"] as string | undefined, message: end["grpc-message"] as string | undefined, messages: bytes });
    });
  });
}

const SUBSCRIBE = "/eventstore.v1.EventStoreService/Subscribe";

describe("a subscription whose deadline passes", () => {
  it("ends with DEADLINE_EXCEEDED from the server, after its messages, not with OK", async () => {
    const started = performance.now();
    const got = await rawCall(SUBSCRIBE, new Uint8Array(), { "grpc-timeout": "400m" });
    expect(got.status).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    expect(got.messages).toBeGreaterThan(0); // the confirmation, the event, caught up
    expect(performance.now() - started).toBeGreaterThanOrEqual(350);
  });

  it("ends with DEADLINE_EXCEEDED for grpc-js, after the history", async () => {
    const client = createGrpcJsClient(`127.0.0.1:${server.port}`);
    const kinds: string[] = [];
    // The timeout goes as grpc-timeout metadata, without a deadline of the client's own: what
    // grpc-js then reports is the server's status (with a deadline, its own timer may win).
    const metadata = new grpc.Metadata();
    metadata.set("grpc-timeout", "400m");
    const code = await new Promise<number>((resolve) => {
      const call = client.subscribe({ stream: "order-1" }, metadata);
      call.on("data", (m: { message: string }) => kinds.push(m.message));
      call.on("error", (e: grpc.ServiceError) => resolve(e.code));
      call.on("end", () => resolve(grpc.status.OK));
    });
    client.close();
    expect(kinds.slice(0, 3)).toEqual(["confirmation", "events", "caughtUp"]);
    expect(code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });
});

describe("a read whose deadline passes while it waits", () => {
  it("ends with DEADLINE_EXCEEDED, not OK with part of the log", async () => {
    // The server holds the read's pages behind HTTP/2 flow control: a client that reads
    // nothing keeps the read open until its deadline.
    await server.store.append([{ stream: "big-1", expected: "any", events: Array.from({ length: 200 }, () => ({ id: crypto.randomUUID(), type: "Big", contentType: "application/octet-stream", data: Buffer.alloc(8 * 1024, 1), metadata: {} })) }]);
    const got = await new Promise<string | undefined>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": "/eventstore.v1.EventStoreService/ReadAll", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "500m" });
      stream.end(Buffer.alloc(5));
      stream.pause();
      let trailers: IncomingHttpHeaders = {};
      stream.on("trailers", (t) => (trailers = t));
      stream.on("error", reject);
      setTimeout(() => stream.resume(), 900);
      stream.on("data", () => {});
      stream.on("close", () => resolve(trailers["grpc-status"] as string | undefined));
    });
    expect(got).toBe(String(grpc.status.DEADLINE_EXCEEDED));
  });
});

describe("clients that cancel", () => {
  it("are not logged as server errors, however many, wherever their calls are", async () => {
    // Enough log that reads and catching-up subscriptions are still at it when they are cancelled.
    for (let i = 0; i < 10; i++) {
      await server.store.append([{ stream: `many-${i}`, expected: "any", events: Array.from({ length: 200 }, () => ({ id: crypto.randomUUID(), type: "Many", contentType: "application/json", data: Buffer.from(JSON.stringify({ pad: "p".repeat(2000) })), metadata: { i } })) }]);
    }
    errors.length = 0;
    const streams = Array.from({ length: 200 }, (_, i) => {
      const stream = session.request({ ":method": "POST", ":path": i % 2 ? SUBSCRIBE : "/eventstore.v1.EventStoreService/ReadAll", "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.on("data", () => {});
      stream.end(Buffer.alloc(5));
      return stream;
    });
    // Cancelled over 300 ms: some before their first page, some mid-read, some live.
    for (const [i, s] of streams.entries()) setTimeout(() => s.close(constants.NGHTTP2_CANCEL), (i * 7) % 300);
    await new Promise((r) => setTimeout(r, 300));
    await new Promise((r) => setTimeout(r, 500));
    expect(errors).toEqual([]);
    // And the server still serves.
    const health = await rawCall("/grpc.health.v1.Health/Check", new Uint8Array());
    expect(health.status).toBe("0");
  });
});

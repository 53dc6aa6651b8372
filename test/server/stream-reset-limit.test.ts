import * as http2 from "node:http2";
import { loadConfig } from "../../src/server/config";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// A client that cancels more calls on one HTTP/2 connection than --max-stream-resets allows at
// once (refilled at --stream-resets-per-second) has the connection closed with GOAWAY
// ENHANCE_YOUR_CALM; one that cancels fewer keeps it.

const SUBSCRIBE = "/eventstore.v1.EventStoreService/Subscribe";
const BURST = 50;

let db: TestDatabase;
let server: TestServer;

beforeAll(async () => {
  db = await createTestDatabase();
  const defaults = loadConfig([], {});
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, {
    connections: { ...defaults.connections, maxStreamResets: BURST, streamResetsPerSecond: 0 },
  });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

interface Client {
  session: http2.ClientHttp2Session;
  goaway?: number;
  closed: boolean;
}

function connect(): Client {
  const client: Client = { session: http2.connect(server.url), closed: false };
  client.session.on("error", () => {});
  client.session.on("goaway", (code) => (client.goaway = code));
  client.session.on("close", () => (client.closed = true));
  return client;
}

/** Opens `n` subscriptions (an empty Subscribe: the whole log) and cancels each once it is confirmed. */
async function openAndCancel(client: Client, n: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, () => new Promise<void>((resolve) => {
      const stream = client.session.request({ ":method": "POST", ":path": SUBSCRIBE, "content-type": "application/grpc", te: "trailers" });
      stream.on("error", () => {});
      stream.once("data", () => stream.close(http2.constants.NGHTTP2_CANCEL));
      stream.once("close", () => resolve());
      stream.end(Buffer.alloc(5));
    })),
  );
}

test("a client that cancels past the limit has its connection closed with ENHANCE_YOUR_CALM", async () => {
  const client = connect();
  await openAndCancel(client, BURST * 2);
  await until(() => client.closed, "the server to close the connection");
  expect(client.goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
});

test("a client that cancels fewer keeps its connection, and its next call is served", async () => {
  const client = connect();
  await openAndCancel(client, BURST - 10);
  await new Promise((r) => setTimeout(r, 200));
  expect(client.closed).toBe(false);
  expect(client.goaway).toBeUndefined();
  const status = await new Promise<string | undefined>((resolve) => {
    const stream = client.session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/grpc", te: "trailers" });
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (t) => (trailers = t));
    stream.resume();
    stream.on("close", () => resolve(trailers["grpc-status"] as string | undefined));
    stream.end(Buffer.alloc(5));
  });
  expect(status).toBe("0");
  client.session.destroy();
});

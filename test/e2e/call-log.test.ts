import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import type { Logger } from "../../src/domain";
import { writeAuthFile } from "../support/auth-file";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

// One line per call: method, principal, code, time, events and bytes, the request id (the
// client's, or one made and sent back) and the W3C trace id, never a payload. Slow calls and
// slow database operations at warn.

interface Line {
  level: "info" | "warn" | "error";
  msg: string;
  fields: Record<string, unknown>;
}

const SECRET = "do-not-log-this-payload";
const TRACE = "0af7651916cd43dd8448eb211c80319c";
const SPAN = "b7ad6b7169203331";
const APPEND = "/eventstore.v1.EventStoreService/Append";

let dir: string;
let db: TestDatabase;
let server: TestServer;
let slowServer: TestServer;
let client: Client<typeof EventStoreService>;
let key: string;
const lines: Line[] = [];
const slowLines: Line[] = [];

const capture = (into: Line[]): Logger => ({
  info: (msg, fields = {}) => void into.push({ level: "info", msg, fields }),
  warn: (msg, fields = {}) => void into.push({ level: "warn", msg, fields }),
  error: (msg, fields = {}) => void into.push({ level: "error", msg, fields }),
});
const calls = (from: Line[], requestId: string) => from.filter((l) => (l.msg === "call" || l.msg === "slow call") && l.fields.requestId === requestId);
const auth = () => ({ authorization: `Bearer ${key}` });
const data = (text: string) => new TextEncoder().encode(text);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "call-log-"));
  ({ alice: key } = writeAuthFile(join(dir, "auth.yaml"), { principals: { alice: {} }, rules: [{ principals: ["alice"], permissions: ["admin"] }] }));
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, { authFile: join(dir, "auth.yaml") }, capture(lines));
  slowServer = await startTestServer({ kind: "postgres", url: db.url }, {}, { slowCallMs: 150, slowQueryMs: 150 }, capture(slowLines));
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), slowServer?.stop()]);
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

test("an append's line: method, principal, code, time, events and bytes, the client's request id and trace; never the payload", async () => {
  let echoed: string | null = null;
  await client.append(
    { stream: "acct-1", events: [{ type: "Opened", payload: { case: "data", value: data(SECRET) } }, { type: "Deposited", payload: { case: "data", value: data("1234") } }] },
    { headers: { ...auth(), "x-request-id": "req-42", traceparent: `00-${TRACE}-${SPAN}-01` }, onHeader: (h) => (echoed = h.get("x-request-id")) },
  );
  expect(echoed).toBe("req-42");
  const [line] = await until(() => calls(lines, "req-42").length === 1 && calls(lines, "req-42"), "the append's line");
  expect(line).toEqual({
    level: "info",
    msg: "call",
    fields: {
      method: APPEND,
      code: "OK",
      ms: expect.any(Number) as number,
      requestId: "req-42",
      traceId: TRACE,
      spanId: SPAN,
      principal: "alice",
      messages: 1,
      events: 2,
      bytes: SECRET.length + 4,
      protocol: "grpc http/2.0",
    },
  });
  expect(line.fields.ms as number).toBeGreaterThan(0);
  expect(JSON.stringify(lines)).not.toContain(SECRET);
  expect(JSON.stringify(lines)).not.toContain(Buffer.from(SECRET).toString("base64"));
});

test("a call without a request id gets a new one, sent back and logged; one that is not sane is replaced", async () => {
  for (const sent of [undefined, "has spaces in it", "x".repeat(129)]) {
    let echoed: string | null = null;
    await client.getStream({ stream: "acct-1" }, { headers: { ...auth(), ...(sent ? { "x-request-id": sent } : {}) }, onHeader: (h) => (echoed = h.get("x-request-id")) });
    expect(echoed).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const [line] = await until(() => calls(lines, echoed!).length === 1 && calls(lines, echoed!), "the call's line");
    expect(line.fields).toMatchObject({ method: "/eventstore.v1.EventStoreService/GetStream", code: "OK", principal: "alice" });
    expect(line.fields.traceId).toBeUndefined();
  }
});

test("a read's line counts the events it sent and its messages; a refused call is logged with its code, without a principal it could not prove", async () => {
  const connect = createClient(EventStoreService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
  for await (const _ of connect.readStream({ stream: "acct-1" }, { headers: { ...auth(), "x-request-id": "read-1" } }));
  const [read] = await until(() => calls(lines, "read-1").length === 1 && calls(lines, "read-1"), "the read's line");
  expect(read.fields).toMatchObject({ method: "/eventstore.v1.EventStoreService/ReadStream", code: "OK", events: 2, messages: 1, principal: "alice", protocol: "connect http/1.1" });

  await expect(client.getStream({ stream: "acct-1" }, { headers: { authorization: "Bearer wrong", "x-request-id": "refused-1" } })).rejects.toThrow();
  const [refused] = await until(() => calls(lines, "refused-1").length === 1 && calls(lines, "refused-1"), "the refused call's line");
  expect(refused.fields).toMatchObject({ code: "UNAUTHENTICATED", messages: 0 });
  expect(refused.fields.principal).toBeUndefined();
});

test("a unary call past --slow-call-ms is logged at warn, and so is a database operation past --slow-query-ms", async () => {
  const slowClient = createClient(EventStoreService, createGrpcTransport({ baseUrl: slowServer.url }));
  const admin = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    // The append waits for the log's row, locked here for 400 ms.
    await admin.begin(async (tx) => {
      await tx`select position from eventstore.log for update`;
      const append = slowClient.append({ stream: "acct-2", events: [{ type: "Opened" }] }, { headers: { "x-request-id": "slow-1" } });
      await new Promise((r) => setTimeout(r, 400));
      return { append };
    }).then(({ append }) => append);
  } finally {
    await admin.end();
  }
  const [line] = await until(() => calls(slowLines, "slow-1").length === 1 && calls(slowLines, "slow-1"), "the slow call's line");
  expect(line).toMatchObject({ level: "warn", msg: "slow call", fields: { method: APPEND, code: "OK" } });
  // The lock is held 400 ms from when the call was sent: the server counts from a little later.
  expect(line.fields.ms as number).toBeGreaterThanOrEqual(300);
  const query = slowLines.find((l) => l.msg === "slow database operation" && l.fields.operation === "append");
  expect(query).toMatchObject({ level: "warn", fields: { operation: "append", pool: "write", slowQueryMs: 150 } });
  expect(query!.fields.ms as number).toBeGreaterThanOrEqual(250);
  // A fast call on the same server stays at info.
  await slowClient.getStream({ stream: "acct-2" }, { headers: { "x-request-id": "fast-1" } });
  const [fast] = await until(() => calls(slowLines, "fast-1").length === 1 && calls(slowLines, "fast-1"), "the fast call's line");
  expect(fast).toMatchObject({ level: "info", msg: "call" });
});

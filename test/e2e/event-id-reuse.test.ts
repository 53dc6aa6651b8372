import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { createGrpcJsClient, errorInfo, serverStream, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// An append whose ids are stored where a retry would find them is a retry only if it carries
// the same events again; the same ids with another event is the client's bug, ALREADY_EXISTS /
// EVENT_ID_REUSED, and the new event is not dropped in silence.

let db: TestDatabase;
let server: TestServer;
let client: ReturnType<typeof createGrpcJsClient>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  client = createGrpcJsClient(`127.0.0.1:${server.port}`);
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  await db?.drop();
});

async function failure(call: Promise<unknown>) {
  try {
    await call;
  } catch (e) {
    const err = e as grpc.ServiceError;
    const info = errorInfo(err);
    return { code: err.code, reason: info?.reason, metadata: info?.metadata };
  }
  throw new Error("expected the call to fail");
}

const metadata = (fields: Record<string, number | string>) => ({
  fields: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, typeof v === "number" ? { numberValue: v } : { stringValue: v }])),
});

describe("an append again under the same ids", () => {
  const id = randomUUID();
  const second = randomUUID();
  const original = [
    { id, type: "Deposited", contentType: "application/json", data: Buffer.from('{"amount":5}'), metadata: metadata({ a: 1, b: "x" }) },
    { id: second, type: "Deposited", data: Buffer.from('{"amount":6}') },
  ];

  beforeAll(async () => {
    await unary(client, "append", { stream: "acct-1", events: original });
  });

  it("with the same events is the original answer, written once (metadata compared as JSON)", async () => {
    const again = [{ ...original[0], metadata: metadata({ b: "x", a: 1.0 }) }, { ...original[1], contentType: "application/json" }];
    const got = await unary<{ revision: string; positions: string[] }>(client, "append", { stream: "acct-1", events: again });
    expect(got.revision).toBe("1");
    const [page] = await serverStream(client, "readStream", { stream: "acct-1" });
    expect(page.events).toHaveLength(2);
  });

  it.each([
    ["another type", { type: "Withdrawn" }],
    ["other data", { data: Buffer.from('{"amount":7}') }],
    ["another content type", { contentType: "application/octet-stream" }],
    ["other metadata", { metadata: metadata({ a: 2, b: "x" }) }],
  ])("with %s in its second event is ALREADY_EXISTS / EVENT_ID_REUSED naming it, and writes nothing", async (_, change) => {
    const got = await failure(unary(client, "append", { stream: "acct-1", events: [original[0], { ...original[1], ...change }] }));
    expect(got).toEqual({ code: grpc.status.ALREADY_EXISTS, reason: "EVENT_ID_REUSED", metadata: { stream: "acct-1", event_id: second } });
    const [page] = await serverStream(client, "readStream", { stream: "acct-1" });
    expect(page.events.map((e: { type: string; data: Buffer }) => [e.type, e.data.toString()])).toEqual([
      ["Deposited", '{"amount":5}'],
      ["Deposited", '{"amount":6}'],
    ]);
  });

  it("in another stream is still ALREADY_EXISTS / DUPLICATE_EVENT_ID", async () => {
    const got = await failure(unary(client, "append", { stream: "acct-2", events: [original[0]] }));
    expect(got).toMatchObject({ code: grpc.status.ALREADY_EXISTS, reason: "DUPLICATE_EVENT_ID" });
  });
});

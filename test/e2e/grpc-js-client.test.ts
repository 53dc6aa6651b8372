import { randomUUID } from "node:crypto";
import { status as Status, type ServiceError } from "@grpc/grpc-js";
import { createGrpcJsClient, errorInfo, serverStream, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

describe("the canonical gRPC client (@grpc/grpc-js + proto-loader)", () => {
  let db: TestDatabase;
  let server: TestServer;
  let client: any;

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

  it("appends JSON and bytes events and reads them back as stored", async () => {
    const id = randomUUID();
    const res = await unary(client, "Append", {
      stream: "account-1",
      expectedState: "EXPECTED_STATE_NO_STREAM",
      events: [
        { id, type: "Opened", json: { structValue: { fields: { owner: { stringValue: "ann" } } } }, metadata: { fields: { tenant: { stringValue: "t1" } } } },
        { type: "Blob", contentType: "application/octet-stream", data: Buffer.from([0, 1, 2, 255]) },
      ],
    });
    expect(res.revision).toBe("1");
    expect(res.positions).toHaveLength(2);
    expect(res.eventIds[0]).toBe(id);
    expect(res.eventIds[1]).toMatch(/^[0-9a-f-]{36}$/);

    const messages = await serverStream(client, "ReadStream", { stream: "account-1" });
    const events = messages.flatMap((m) => m.events);
    expect(events.map((e: any) => [e.type, e.revision, e.position])).toEqual([
      ["Opened", "0", res.positions[0]],
      ["Blob", "1", res.positions[1]],
    ]);
    expect(events[0].payload).toBe("data");
    expect(Buffer.from(events[0].data).toString()).toBe('{"owner":"ann"}');
    expect(events[0].contentType).toBe("application/json");
    expect(events[0].metadata.fields.tenant.stringValue).toBe("t1");
    expect(Buffer.from(events[1].data)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(Number(events[0].storedAt.seconds)).toBeGreaterThan(0);
  });

  it("reads JSON events as JSON values when asked", async () => {
    const [message] = await serverStream(client, "ReadStream", { stream: "account-1", dataEncoding: "DATA_ENCODING_JSON", limit: 1 });
    expect(message.events[0].payload).toBe("json");
    expect(message.events[0].json.structValue.fields.owner.stringValue).toBe("ann");
  });

  it("answers a wrong expected revision with ABORTED and the facts in an ErrorInfo", async () => {
    const err: ServiceError = await unary(client, "Append", {
      stream: "account-1",
      expectedRevision: "7",
      events: [{ type: "Late", json: { nullValue: "NULL_VALUE" } }],
    }).catch((e) => e);
    expect(err.code).toBe(Status.ABORTED);
    expect(err.details).toBe("Wrong expected revision: 7 (stream account-1, actual 1)");
    expect(errorInfo(err)).toMatchObject({
      reason: "WRONG_EXPECTED_REVISION",
      domain: "eventstore.v1",
      metadata: { stream: "account-1", expected_revision: "7", actual_revision: "1" },
    });
  });

  it("reads error messages as sent, whatever their characters", async () => {
    const err: ServiceError = await unary(client, "GetStream", { stream: "konto-ü/100%, ok?" }).catch((e) => e);
    expect(err.code).toBe(Status.NOT_FOUND);
    expect(err.details).toBe("Stream konto-ü/100%, ok? not found");
  });

  it("appends to several streams atomically", async () => {
    const res = await unary(client, "MultiStreamAppend", {
      appends: [
        { stream: "transfer-1", expectedState: "EXPECTED_STATE_NO_STREAM", events: [{ type: "Debited" }] },
        { stream: "transfer-2", expectedState: "EXPECTED_STATE_NO_STREAM", events: [{ type: "Credited" }] },
      ],
    });
    expect(res.results.map((r: any) => r.stream)).toEqual(["transfer-1", "transfer-2"]);
    const err: ServiceError = await unary(client, "MultiStreamAppend", {
      appends: [
        { stream: "transfer-3", events: [{ type: "Debited" }] },
        { stream: "transfer-2", expectedState: "EXPECTED_STATE_NO_STREAM", events: [{ type: "Credited" }] },
      ],
    }).catch((e) => e);
    expect(err.code).toBe(Status.ABORTED);
    const missing: ServiceError = await unary(client, "GetStream", { stream: "transfer-3" }).catch((e) => e);
    expect(missing.code).toBe(Status.NOT_FOUND);
  });

  it("reads the whole log filtered by type and metadata", async () => {
    const messages = await serverStream(client, "ReadAll", {
      filter: {
        eventTypes: ["Opened", "Debited"],
        matchers: [{ metadataKey: "tenant", operator: "OPERATOR_EQ", value: { stringValue: "t1" } }],
      },
    });
    expect(messages.flatMap((m) => m.events).map((e: any) => e.stream)).toEqual(["account-1"]);
    const backwards = await serverStream(client, "ReadAll", { direction: "DIRECTION_BACKWARDS", limit: 2 });
    expect(backwards.flatMap((m) => m.events).map((e: any) => e.stream)).toEqual(["transfer-2", "transfer-1"]);
  });

  it("lists, describes, deletes and tombstones streams", async () => {
    const first = await unary(client, "ListStreams", { prefix: "transfer-", pageSize: 1 });
    expect(first.streams.map((s: any) => s.name)).toEqual(["transfer-1"]);
    const second = await unary(client, "ListStreams", { prefix: "transfer-", pageSize: 1, pageToken: first.nextPageToken });
    expect(second.streams.map((s: any) => s.name)).toEqual(["transfer-2"]);
    expect(second.nextPageToken).toBe("");

    const info = await unary(client, "GetStream", { stream: "account-1" });
    expect(info.stream).toMatchObject({ name: "account-1", revision: "1", deleted: false });
    await unary(client, "DeleteStream", { stream: "account-1", expectedRevision: "1" });
    const gone: ServiceError = await serverStream(client, "ReadStream", { stream: "account-1" }).catch((e) => e);
    expect(gone.code).toBe(Status.NOT_FOUND);
    expect(errorInfo(gone)?.reason).toBe("STREAM_DELETED");

    await unary(client, "TombstoneStream", { stream: "transfer-1" });
    const refused: ServiceError = await unary(client, "Append", { stream: "transfer-1", events: [{ type: "X" }] }).catch((e) => e);
    expect(refused.code).toBe(Status.FAILED_PRECONDITION);
    expect(errorInfo(refused)?.reason).toBe("STREAM_TOMBSTONED");
  });
});

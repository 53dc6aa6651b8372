import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import type { StoreLocation } from "../../src/store";
import { createGrpcJsClient, errorInfo, unary } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const parse = (b: Buffer) => JSON.parse(b.toString("utf8"));

/** Calls that must fail: the gRPC code and the ErrorInfo reason and facts. */
async function failure(call: Promise<unknown>) {
  const err = (await call.then(
    () => {
      throw new Error("the call succeeded");
    },
    (e: grpc.ServiceError) => e,
  )) as grpc.ServiceError;
  const info = errorInfo(err);
  return { code: grpc.status[err.code], reason: info?.reason, facts: Object.fromEntries(Object.entries(info?.metadata ?? {})) };
}

describe.each<[string, () => Promise<{ location: StoreLocation; drop: () => Promise<void> }>]>([
  [
    "PostgreSQL",
    async () => {
      const db: TestDatabase = await createTestDatabase();
      return { location: { kind: "postgres", url: db.url }, drop: () => db.drop() };
    },
  ],
  ["embedded", async () => ({ location: { kind: "embedded", dataDir: "memory" }, drop: async () => {} })],
])("ProjectionService on %s, through @grpc/grpc-js", (_, database) => {
  let server: TestServer;
  let drop: () => Promise<void>;
  let client: any;
  const call = <T = any>(method: string, request: unknown) => unary<T>(client, method, request);
  const name = () => `balances-${randomUUID()}`;

  beforeAll(async () => {
    const db = await database();
    drop = db.drop;
    server = await startTestServer(db.location);
    client = createGrpcJsClient(`127.0.0.1:${server.port}`, "ProjectionService");
  });

  afterAll(async () => {
    client?.close();
    await server?.stop();
    await drop?.();
  });

  it("is listed by server reflection, so grpcurl finds it", async () => {
    const definition = protoLoader.loadSync("grpc/reflection/v1/reflection.proto", { includeDirs: [join(__dirname, "../../proto")], oneofs: true });
    const Reflection = (grpc.loadPackageDefinition(definition) as any).grpc.reflection.v1.ServerReflection as grpc.ServiceClientConstructor;
    const reflection = new Reflection(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const call = (reflection as any).ServerReflectionInfo();
      const answer = new Promise<any>((resolve, reject) => {
        call.on("data", resolve);
        call.on("error", reject);
      });
      call.write({ listServices: "" });
      call.end();
      const services = (await answer).listServicesResponse.service.map((s: { name: string }) => s.name);
      expect(services).toEqual(expect.arrayContaining(["eventstore.v1.EventStoreService", "eventstore.v1.ProjectionService"]));
    } finally {
      reflection.close();
    }
  });

  it("creates a record at version 1 with its initial state, idle, and answers it by name and in lists", async () => {
    const n = name();
    const { projection } = await call("CreateProjection", { name: n, initialState: json({ total: 0 }) });
    expect(projection).toMatchObject({ name: n, status: "PROJECTION_STATUS_IDLE", version: "1", position: "0", stateContentType: "application/json" });
    expect(parse(projection.state)).toEqual({ total: 0 });
    expect(projection.lease).toBeNull();
    expect((await call("GetProjection", { name: n })).projection).toMatchObject({ name: n, version: "1" });
    expect(await failure(call("CreateProjection", { name: n, initialState: json({}) }))).toMatchObject({
      code: "ALREADY_EXISTS",
      reason: "PROJECTION_EXISTS",
    });
  });

  it("lists by prefix in pages, with opaque tokens", async () => {
    const prefix = `list-${randomUUID()}-`;
    for (const i of [3, 1, 2]) await call("CreateProjection", { name: `${prefix}${i}`, initialState: json(null) });
    const first = await call("ListProjections", { prefix, pageSize: 2 });
    expect(first.projections.map((p: any) => p.name)).toEqual([`${prefix}1`, `${prefix}2`]);
    const second = await call("ListProjections", { prefix, pageSize: 2, pageToken: first.nextPageToken });
    expect(second.projections.map((p: any) => p.name)).toEqual([`${prefix}3`]);
    expect(second.nextPageToken).toBe("");
    expect(await failure(call("ListProjections", { prefix: "other", pageToken: first.nextPageToken }))).toMatchObject({ code: "INVALID_ARGUMENT" });
  });

  it("persists state and positions in one write, guarded by the expected version", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json({ total: 0 }) });
    const persisted = (
      await call("PersistProjection", {
        name: n,
        expectedVersion: "1",
        state: json({ total: 5 }),
        position: "42",
        streamRevisions: { "account-1": "3", "account-2": "0" },
      })
    ).projection;
    expect(persisted).toMatchObject({ version: "2", position: "42", streamRevisions: { "account-1": "3", "account-2": "0" } });
    expect(parse(persisted.state)).toEqual({ total: 5 });
    // A second runner that read version 1 cannot write over it.
    const stale = await failure(call("PersistProjection", { name: n, expectedVersion: "1", state: json({ total: 1 }), position: "7" }));
    expect(stale).toEqual({
      code: "ABORTED",
      reason: "WRONG_EXPECTED_VERSION",
      facts: { name: n, expected_version: "1", actual_version: "2" },
    });
    const after = (await call("GetProjection", { name: n })).projection;
    expect(parse(after.state)).toEqual({ total: 5 });
    expect(after.position).toBe("42");
  });

  it("resets state and positions to the initial ones and moves the version on, so a stale runner cannot persist", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json({ total: 0 }) });
    await call("PersistProjection", { name: n, expectedVersion: "1", state: json({ total: 9 }), position: "10", streamRevisions: { a: "1" } });
    const reset = (await call("ResetProjection", { name: n })).projection;
    expect(reset).toMatchObject({ version: "3", position: "0", streamRevisions: {} });
    expect(parse(reset.state)).toEqual({ total: 0 });
    expect(await failure(call("PersistProjection", { name: n, expectedVersion: "2", state: json({}), position: "11" }))).toMatchObject({
      reason: "WRONG_EXPECTED_VERSION",
    });
    expect(await failure(call("ResetProjection", { name: n, expectedVersion: "2" }))).toMatchObject({ code: "ABORTED" });
  });

  it("updates the status without touching state or version, optionally guarded by the version", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json(1), status: "PROJECTION_STATUS_RUNNING" });
    const stopping = (await call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_STOPPING" })).projection;
    expect(stopping).toMatchObject({ status: "PROJECTION_STATUS_STOPPING", version: "1" });
    // A runner writing IDLE over the RUNNING it saw must not overwrite a request made meanwhile.
    expect(
      await failure(call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_IDLE", expectedStatus: "PROJECTION_STATUS_RUNNING" })),
    ).toEqual({
      code: "ABORTED",
      reason: "WRONG_EXPECTED_STATUS",
      facts: { name: n, expected_status: "running", actual_status: "stopping" },
    });
    expect(
      (await call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_IDLE", expectedStatus: "PROJECTION_STATUS_STOPPING" })).projection.status,
    ).toBe("PROJECTION_STATUS_IDLE");
    expect(await failure(call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_IDLE", expectedVersion: "5" }))).toMatchObject({
      code: "ABORTED",
    });
    expect(await failure(call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_UNSPECIFIED" }))).toMatchObject({
      code: "INVALID_ARGUMENT",
      facts: { field: "status" },
    });
  });

  it("gives a lease to one runner at a time, renews it for its holder, and lets another take it once it expires", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json(0) });
    const a = (await call("AcquireProjectionLease", { name: n, holder: "runner-a", ttlMs: 1000 })).projection;
    expect(a.lease.holder).toBe("runner-a");
    const held = await failure(call("AcquireProjectionLease", { name: n, holder: "runner-b", ttlMs: 1000 }));
    expect(held).toMatchObject({ code: "FAILED_PRECONDITION", reason: "LEASE_HELD", facts: { name: n, holder: "runner-a" } });
    // B cannot persist while A's lease is live, even at the right version.
    expect(await failure(call("PersistProjection", { name: n, expectedVersion: "1", state: json(1), leaseHolder: "runner-b" }))).toMatchObject({
      reason: "LEASE_HELD",
    });
    const renewed = (await call("AcquireProjectionLease", { name: n, holder: "runner-a", ttlMs: 1000 })).projection;
    expect(Number(renewed.lease.expiresAt.seconds) * 1000 + renewed.lease.expiresAt.nanos / 1e6).toBeGreaterThanOrEqual(
      Number(a.lease.expiresAt.seconds) * 1000 + a.lease.expiresAt.nanos / 1e6,
    );
    await sleep(1100);
    expect((await call("GetProjection", { name: n })).projection.lease).toBeNull();
    const b = (await call("AcquireProjectionLease", { name: n, holder: "runner-b", ttlMs: 5000 })).projection;
    expect(b.lease.holder).toBe("runner-b");
    // A's lease is gone: A cannot persist, B can.
    expect(await failure(call("PersistProjection", { name: n, expectedVersion: "1", state: json(2), leaseHolder: "runner-a" }))).toMatchObject({
      reason: "LEASE_HELD",
    });
    expect((await call("PersistProjection", { name: n, expectedVersion: "1", state: json(3), leaseHolder: "runner-b" })).projection.version).toBe("2");
    // Nor write a status over B's: a stalled runner cannot say IDLE while its successor runs.
    expect(
      await failure(call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_IDLE", leaseHolder: "runner-a" })),
    ).toMatchObject({ code: "FAILED_PRECONDITION", reason: "LEASE_HELD", facts: { holder: "runner-b" } });
    expect((await call("UpdateProjectionStatus", { name: n, status: "PROJECTION_STATUS_RUNNING", leaseHolder: "runner-b" })).projection.status).toBe(
      "PROJECTION_STATUS_RUNNING",
    );
    // Released, another runner can start at once.
    await call("ReleaseProjectionLease", { name: n, holder: "runner-b" });
    expect((await call("AcquireProjectionLease", { name: n, holder: "runner-c", ttlMs: 1000 })).projection.lease.holder).toBe("runner-c");
    expect(await failure(call("ReleaseProjectionLease", { name: n, holder: "runner-b" }))).toMatchObject({ reason: "LEASE_HELD" });
  });

  it("deletes a record; calls on it then answer NOT_FOUND", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json(0) });
    expect(await failure(call("DeleteProjection", { name: n, expectedVersion: "2" }))).toMatchObject({ code: "ABORTED" });
    await call("DeleteProjection", { name: n, expectedVersion: "1" });
    for (const [method, request] of [
      ["GetProjection", { name: n }],
      ["DeleteProjection", { name: n }],
      ["ResetProjection", { name: n }],
      ["PersistProjection", { name: n, expectedVersion: "1", state: json(0) }],
      ["AcquireProjectionLease", { name: n, holder: "r", ttlMs: 1000 }],
    ] as const) {
      expect({ method, ...(await failure(call(method, request))) }).toMatchObject({ method, code: "NOT_FOUND", reason: "PROJECTION_NOT_FOUND", facts: { name: n } });
    }
  });

  it("refuses bad input with INVALID_ARGUMENT naming the field, and writes nothing", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json(0) });
    const cases: [string, unknown, string][] = [
      ["CreateProjection", { name: "", initialState: json(0) }, "name"],
      ["CreateProjection", { name: "bad\nname", initialState: json(0) }, "name"],
      ["CreateProjection", { name: "x".repeat(257), initialState: json(0) }, "name"],
      ["PersistProjection", { name: n, expectedVersion: "1", state: json(0), streamRevisions: { "bad\u0001": "1" } }, "stream_revisions"],
      ["AcquireProjectionLease", { name: n, holder: "", ttlMs: 1000 }, "holder"],
      ["AcquireProjectionLease", { name: n, holder: "r", ttlMs: 999 }, "ttl_ms"],
      ["AcquireProjectionLease", { name: n, holder: "r", ttlMs: 3_600_001 }, "ttl_ms"],
      ["ListProjections", { pageSize: -1 }, "page_size"],
    ];
    for (const [method, request, field] of cases) {
      expect({ method, field, ...(await failure(call(method, request))) }).toMatchObject({ method, code: "INVALID_ARGUMENT", facts: { field } });
    }
    expect((await call("GetProjection", { name: n })).projection).toMatchObject({ version: "1", lease: null });
  });

  it("refuses a state over MAX_PROJECTION_STATE_BYTES and more than MAX_PROJECTION_STREAMS revisions with LIMIT_EXCEEDED", async () => {
    const n = name();
    await call("CreateProjection", { name: n, initialState: json(0) });
    const tooMany = Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`s-${i}`, "1"]));
    const cases: [string, unknown, string, string, string][] = [
      ["CreateProjection", { name: name(), initialState: Buffer.alloc(1024 * 1024 + 1) }, "initial_state", "1048576", "1048577"],
      ["PersistProjection", { name: n, expectedVersion: "1", state: Buffer.alloc(1024 * 1024 + 1) }, "state", "1048576", "1048577"],
      ["PersistProjection", { name: n, expectedVersion: "1", state: json(0), streamRevisions: tooMany }, "stream_revisions", "1000", "1001"],
    ];
    for (const [method, request, field, limit, value] of cases) {
      expect({ method, ...(await failure(call(method, request))) }).toMatchObject({
        method,
        code: "RESOURCE_EXHAUSTED",
        reason: "LIMIT_EXCEEDED",
        facts: { field, limit, value },
      });
    }
    // At the limits, accepted.
    const atLimit = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`s-${i}`, "1"]));
    const persisted = (await call("PersistProjection", { name: n, expectedVersion: "1", state: Buffer.alloc(1024 * 1024), streamRevisions: atLimit })).projection;
    expect(persisted.version).toBe("2");
    expect(Object.keys(persisted.streamRevisions)).toHaveLength(1000);
  });
});

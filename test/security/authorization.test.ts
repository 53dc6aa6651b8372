import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { PERMISSIONS, type Permission } from "../../src/domain";
import { writeAuthFile } from "../support/auth-file";
import { createGrpcJsClient, errorInfo } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

/**
 * Every RPC, with the permission it needs on the resource it names: a principal holding only
 * that permission there is let through; one holding every other permission there, or that
 * permission elsewhere, is refused with PERMISSION_DENIED naming it; a call without a valid
 * token is UNAUTHENTICATED; and a refused call changes nothing.
 */

// Stream names by prefix and by category: ReadAll asks by prefix, the whole-log Subscribe by category.
const GRANTED = { streams: ["acct-*"], categories: ["acct"], subscriptions: ["sub-*"], projections: ["proj-*"] };
const ELSEWHERE = { streams: ["other-*"], categories: ["other"], subscriptions: ["other-*"], projections: ["other-*"] };
const PLAIN = PERMISSIONS.filter((p): p is Exclude<Permission, "admin"> => p !== "admin");

type Kind = "EventStoreService" | "ProjectionService";
interface Case {
  service: Kind;
  method: string;
  permission: Permission;
  streaming?: boolean;
  request: () => Record<string, unknown>;
}

let n = 0;
const fresh = (prefix: string) => `${prefix}-${++n}`;
const event = { type: "T", data: Buffer.from("{}"), contentType: "application/json" };

const CASES: Case[] = [
  { service: "EventStoreService", method: "Append", permission: "write", request: () => ({ stream: fresh("acct"), events: [event] }) },
  {
    service: "EventStoreService",
    method: "MultiStreamAppend",
    permission: "write",
    request: () => ({ appends: [{ stream: fresh("acct"), events: [event] }, { stream: fresh("acct"), events: [event] }] }),
  },
  { service: "EventStoreService", method: "ReadStream", permission: "read", streaming: true, request: () => ({ stream: "acct-1" }) },
  { service: "EventStoreService", method: "ReadAll", permission: "read", streaming: true, request: () => ({ filter: { streamPrefix: "acct-" } }) },
  { service: "EventStoreService", method: "ListStreams", permission: "read", request: () => ({ prefix: "acct-" }) },
  { service: "EventStoreService", method: "GetStream", permission: "read", request: () => ({ stream: "acct-1" }) },
  { service: "EventStoreService", method: "DeleteStream", permission: "delete", request: () => ({ stream: fresh("acct") }) },
  { service: "EventStoreService", method: "TombstoneStream", permission: "delete", request: () => ({ stream: fresh("acct") }) },
  { service: "EventStoreService", method: "Subscribe", permission: "subscribe", streaming: true, request: () => ({ stream: "acct-1" }) },
  { service: "EventStoreService", method: "Subscribe", permission: "subscribe", streaming: true, request: () => ({ filter: { category: "acct" } }) },
  { service: "EventStoreService", method: "CommitCheckpoint", permission: "checkpoint", request: () => ({ subscriptionName: fresh("sub"), position: "1" }) },
  { service: "EventStoreService", method: "GetCheckpoint", permission: "checkpoint", request: () => ({ subscriptionName: "sub-1" }) },
  { service: "ProjectionService", method: "CreateProjection", permission: "projection.admin", request: () => ({ name: fresh("proj") }) },
  { service: "ProjectionService", method: "GetProjection", permission: "projection.read", request: () => ({ name: "proj-0" }) },
  { service: "ProjectionService", method: "ListProjections", permission: "projection.read", request: () => ({ prefix: "proj-" }) },
  { service: "ProjectionService", method: "DeleteProjection", permission: "projection.admin", request: () => ({ name: "proj-0" }) },
  { service: "ProjectionService", method: "ResetProjection", permission: "projection.admin", request: () => ({ name: "proj-0" }) },
  {
    service: "ProjectionService",
    method: "UpdateProjectionStatus",
    permission: "projection.run",
    request: () => ({ name: "proj-0", status: "PROJECTION_STATUS_RUNNING" }),
  },
  { service: "ProjectionService", method: "PersistProjection", permission: "projection.run", request: () => ({ name: "proj-0", expectedVersion: "1" }) },
  { service: "ProjectionService", method: "AcquireProjectionLease", permission: "projection.run", request: () => ({ name: "proj-0", holder: "h", ttlMs: 1000 }) },
  { service: "ProjectionService", method: "ReleaseProjectionLease", permission: "projection.run", request: () => ({ name: "proj-0", holder: "h" }) },
];

let dir: string;
let db: TestDatabase;
let server: TestServer;
let keys: Record<string, string>;
const clients: Partial<Record<Kind, grpc.Client & Record<string, Function>>> = {};
const audit: Record<string, unknown>[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-authz-"));
  const principals: Record<string, object> = { admin: {}, elsewhere: {} };
  const rules: Record<string, unknown>[] = [
    { principals: ["admin"], permissions: ["admin"] },
    { principals: ["elsewhere"], permissions: PLAIN, ...ELSEWHERE },
  ];
  for (const p of PLAIN) {
    principals[`only-${p}`] = {};
    principals[`all-but-${p}`] = {};
    rules.push({ principals: [`only-${p}`], permissions: [p], ...GRANTED });
    rules.push({ principals: [`all-but-${p}`], permissions: PLAIN.filter((q) => q !== p), ...GRANTED });
  }
  keys = writeAuthFile(join(dir, "auth.yaml"), { principals, rules });
  db = await createTestDatabase();
  const log = { info: (msg: string, f?: Record<string, unknown>) => void (msg === "audit" && audit.push(f ?? {})), warn() {}, error() {} };
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, { authFile: join(dir, "auth.yaml") }, log);
  clients.EventStoreService = createGrpcJsClient(`127.0.0.1:${server.port}`, "EventStoreService");
  clients.ProjectionService = createGrpcJsClient(`127.0.0.1:${server.port}`, "ProjectionService");
  // What the allowed calls act on: a stream, a checkpoint and a projection record.
  expect((await call("admin", CASES[0], { stream: "acct-1", events: [event] })).code).toBe(grpc.status.OK);
  expect((await call("admin", CASES[10], { subscriptionName: "sub-1", position: "1" })).code).toBe(grpc.status.OK);
  expect((await call("admin", CASES[12], { name: "proj-0" })).code).toBe(grpc.status.OK);
});

afterAll(async () => {
  for (const c of Object.values(clients)) c?.close();
  await server?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  code: grpc.status;
  reason?: string;
  permission?: string;
  message?: string;
}

/** One call with the principal's key (or `token` as given); a stream is judged by its first message. */
function call(principal: string | { token: string } | undefined, c: Case, request = c.request()): Promise<Outcome> {
  const metadata = new grpc.Metadata();
  const token = principal === undefined ? undefined : typeof principal === "string" ? keys[principal] : principal.token;
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  const client = clients[c.service]!;
  const method = c.method[0].toLowerCase() + c.method.slice(1);
  const failed = (err: grpc.ServiceError): Outcome => {
    const info = errorInfo(err);
    return { code: err.code, reason: info?.reason, permission: info?.metadata.permission, message: err.details };
  };
  return new Promise((resolve) => {
    if (!c.streaming) {
      client[method](request, metadata, (err: grpc.ServiceError | null) => resolve(err ? failed(err) : { code: grpc.status.OK }));
      return;
    }
    const stream = client[method](request, metadata) as grpc.ClientReadableStream<unknown>;
    let settled = false;
    const settle = (o: Outcome) => {
      if (settled) return;
      settled = true;
      resolve(o);
      stream.cancel();
    };
    stream.on("data", () => settle({ code: grpc.status.OK }));
    stream.on("end", () => settle({ code: grpc.status.OK }));
    stream.on("error", (err: grpc.ServiceError) => settle(failed(err)));
  });
}

describe.each(CASES.map((c) => [`${c.service}/${c.method}${c.method === "Subscribe" ? ` ${JSON.stringify(c.request())}` : ""}`, c] as const))(
  "%s",
  (_name, c) => {
    test(`is let through with only ${c.permission} on its target`, async () => {
      const outcome = await call(`only-${c.permission}`, c);
      expect([grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.INTERNAL]).not.toContain(outcome.code);
    });

    test(`is refused with PERMISSION_DENIED naming ${c.permission} to a holder of every other permission`, async () => {
      const outcome = await call(`all-but-${c.permission}`, c);
      expect(outcome).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: "PERMISSION_DENIED", permission: c.permission });
    });

    test(`is refused to a holder of ${c.permission} on other names only`, async () => {
      expect(await call("elsewhere", c)).toMatchObject({ code: grpc.status.PERMISSION_DENIED, permission: c.permission });
    });

    test("is UNAUTHENTICATED without a token and with an unknown one", async () => {
      expect((await call(undefined, c)).code).toBe(grpc.status.UNAUTHENTICATED);
      expect((await call({ token: "not-a-key" }, c)).code).toBe(grpc.status.UNAUTHENTICATED);
    });
  },
);

describe("a refused call", () => {
  test("writes nothing: an append, a tombstone, a checkpoint and a projection stay as they were", async () => {
    const [append, tombstone, checkpoint, create] = [CASES[0], CASES[7], CASES[10], CASES[12]];
    expect((await call("all-but-write", append, { stream: "acct-denied", events: [event] })).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call(undefined, tombstone, { stream: "acct-1" })).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await call("elsewhere", checkpoint, { subscriptionName: "sub-1", position: "99" })).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((await call("all-but-projection.admin", create, { name: "proj-denied" })).code).toBe(grpc.status.PERMISSION_DENIED);

    expect((await call("admin", CASES[5], { stream: "acct-denied" })).code).toBe(grpc.status.NOT_FOUND);
    const info = await new Promise<any>((resolve, reject) =>
      clients.EventStoreService!.getStream({ stream: "acct-1" }, bearer("admin"), (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    expect(info.stream.tombstoned ?? info.stream.deleted).toBeFalsy();
    const saved = await new Promise<any>((resolve, reject) =>
      clients.EventStoreService!.getCheckpoint({ subscriptionName: "sub-1" }, bearer("admin"), (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))),
    );
    expect(saved.position).toBe("1");
    expect((await call("admin", CASES[13], { name: "proj-denied" })).code).toBe(grpc.status.NOT_FOUND);
  });

  test("is in the audit log with its principal, permission and target; so are allowed tombstones", async () => {
    audit.length = 0;
    await call("all-but-delete", CASES[7], { stream: "acct-audited" });
    await call("only-delete", CASES[7], { stream: "acct-audited" });
    expect(audit).toEqual([
      expect.objectContaining({ action: "denied", principal: "all-but-delete", permission: "delete", target: "stream acct-audited", outcome: "PERMISSION_DENIED" }),
      expect.objectContaining({ action: "tombstone_stream", principal: "only-delete", target: "stream acct-audited" }),
    ]);
    expect(JSON.stringify(audit)).not.toContain(keys["only-delete"]);
  });
});

function bearer(principal: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set("authorization", `Bearer ${keys[principal]}`);
  return m;
}

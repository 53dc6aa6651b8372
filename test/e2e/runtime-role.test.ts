import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import postgres from "postgres";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { ProjectionService } from "../../gen/eventstore/v1/projections_pb";
import { openStore } from "../../src/store";
import { adminUrl } from "../support/postgres-url";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { withoutSettings } from "../support/server-env";
import { startTestServer, type TestServer } from "../support/test-server";

// The server runs as a role with only deploy/runtime-grants.sql's rights, once the schema's
// owner has migrated: every kind of call works, and the role can create, alter and drop
// nothing, nor rewrite the log.

const GRANTS = readFileSync(join(__dirname, "../../deploy/runtime-grants.sql"), "utf8");
const role = `es_runtime_${randomBytes(4).toString("hex")}`;
const password = randomBytes(12).toString("hex");

let db: TestDatabase;
let server: TestServer | undefined;
let runtimeUrl: string;

/** The database's URL as `user` with `secret`. */
function asRole(url: string, user: string, secret: string): string {
  const u = new URL(url);
  u.username = user;
  u.password = secret;
  return u.toString();
}

beforeAll(async () => {
  db = await createTestDatabase();
  // The migration role: the database's owner, as `eventstore migrate` would run.
  const owner = await openStore({ location: { kind: "postgres", url: db.url } });
  await owner.close();
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`create role ${role} login password '${password}'`);
    // The file as psql would run it with -v role=...
    await sql.unsafe(GRANTS.replaceAll(':"role"', `"${role}"`)).simple();
  } finally {
    await sql.end();
  }
  runtimeUrl = asRole(db.url, role, password);
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop role if exists ${role}`);
  } finally {
    await admin.end();
  }
});

test("a server with only the runtime grants serves every kind of call", async () => {
  server = await startTestServer({ kind: "postgres", url: runtimeUrl });
  const transport = createGrpcTransport({ baseUrl: server.url });
  const store = createClient(EventStoreService, transport);
  const projections = createClient(ProjectionService, transport);

  const subscription = (async () => {
    for await (const m of store.subscribe({ stream: "account-1" })) if (m.message.case === "events") return m.message.value.events.map((e) => e.type);
    return [];
  })();
  const appended = await store.append({ stream: "account-1", events: [{ type: "Opened" }, { type: "Deposited" }] });
  await store.multiStreamAppend({ appends: [{ stream: "account-2", events: [{ type: "Opened" }] }, { stream: "account-3", events: [{ type: "Opened" }] }] });
  // A failed append in a batch cleans up the stream row it made: a DELETE on streams.
  await expect(store.append({ stream: "account-4", expected: { case: "expectedRevision", value: 5n }, events: [{ type: "Late" }] })).rejects.toThrow();
  expect(await subscription).toEqual(["Opened", "Deposited"]);

  const read: string[] = [];
  for await (const page of store.readStream({ stream: "account-1" })) read.push(...page.events.map((e) => e.type));
  expect(read).toEqual(["Opened", "Deposited"]);
  let all = 0;
  for await (const page of store.readAll({ filter: { streams: { case: "category", value: "account" } } })) all += page.events.length;
  expect(all).toBe(4);
  expect((await store.listStreams({ prefix: "account-" })).streams.map((s) => s.name)).toEqual(["account-1", "account-2", "account-3"]);

  await store.commitCheckpoint({ subscriptionName: "balances", position: appended.positions[1] });
  expect((await store.getCheckpoint({ subscriptionName: "balances" })).position).toBe(appended.positions[1]);
  await store.deleteStream({ stream: "account-2" });
  await store.tombstoneStream({ stream: "account-3" });

  await projections.createProjection({ name: "balances", initialState: new TextEncoder().encode("{}") });
  await projections.acquireProjectionLease({ name: "balances", holder: "runner-1", ttlMs: 10_000 });
  await projections.deleteProjection({ name: "balances" });
});

test("the runtime role can create, alter and drop nothing, nor rewrite the log", async () => {
  const sql = postgres(runtimeUrl, { max: 1, onnotice: () => {} });
  try {
    for (const statement of [
      "create table eventstore.mine (a int)",
      "create schema mine",
      "alter table eventstore.events add column mine int",
      "drop table eventstore.subscription_checkpoints",
      "create index on eventstore.events (type)",
      "update eventstore.events set type = 'Forged'",
      "delete from eventstore.events",
      "truncate eventstore.events",
      "delete from eventstore.schema_migrations",
    ]) {
      await expect(sql.unsafe(statement)).rejects.toMatchObject({ code: expect.stringMatching(/^42501$/) });
    }
  } finally {
    await sql.end();
  }
});

test("on a database not migrated yet, it exits saying to migrate with a role that may", async () => {
  const fresh = await createTestDatabase();
  try {
    const child = spawn(process.execPath, [join(__dirname, "../../dist/src/server/main.js")], {
      env: { ...withoutSettings(), DATABASE_URL: asRole(fresh.url, role, password), PORT: "0", HOST: "127.0.0.1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(1);
    expect(stderr).toContain("permission denied");
    expect(stderr).toContain("run `eventstore migrate` as the schema's owner");
  } finally {
    await fresh.drop();
  }
});

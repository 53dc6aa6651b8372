import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import postgres from "postgres";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

import { adminUrl, withDatabase } from "../support/postgres-url";
import { settingsList } from "../../src/server/config";
import { withoutSettings } from "../support/server-env";

const MAIN = join(__dirname, "../../dist/src/server/main.js");
const MIGRATION_VERSIONS = readdirSync(join(__dirname, "../../src/store/postgres/migrations"))
  .filter((f) => /^\d{4}_.+\.sql$/.test(f))
  .map((f) => Number(f.slice(0, 4)))
  .sort((a, b) => a - b);

interface Cli {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
}

const running = new Set<ChildProcess>();

function cli(args: string[], env: Record<string, string> = {}): Cli {
  const base = withoutSettings();
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let out = "";
  let err = "";
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let pending = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // usage text, not a log line
      }
    }
    waiters.forEach((w) => w());
  });
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      running.delete(child);
      waiters.forEach((w) => w());
      resolve({ code, signal });
    }),
  );
  return {
    child,
    logs,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForLog(msg, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = logs.find((l) => l.msg === msg);
          if (found) return done(() => resolve(found));
          if (child.exitCode !== null || child.signalCode !== null) {
            done(() => reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before logging "${msg}"\n${out}\n${err}`)));
          }
        };
        const timer = setTimeout(() => done(() => reject(new Error(`no "${msg}" log in ${timeoutMs} ms\n${out}\n${err}`))), timeoutMs);
        const done = (then: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          then();
        };
        waiters.add(check);
        check();
      });
    },
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function stop(p: Cli) {
  p.child.kill("SIGTERM");
  return p.exited;
}

async function servingStatus(port: number) {
  const health = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` }));
  return (await health.check({ service: "" })).status;
}

async function appliedMigrations(url: string): Promise<number[]> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ version: number }[]>`select version from eventstore.schema_migrations order by version`;
    return rows.map((r) => r.version);
  } finally {
    await sql.end();
  }
}

const databases: TestDatabase[] = [];
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}

afterAll(async () => {
  for (const child of running) child.kill("SIGKILL");
  await Promise.all(databases.map((db) => db.drop()));
});

describe("eventstore --help", () => {
  test.each([["--help"], ["-h"], ["help"]])("%s prints usage with every flag and its variable, and exits 0", async (arg) => {
    const p = cli([arg]);
    expect(await p.exited).toEqual({ code: 0, signal: null });
    const usage = p.stdout();
    expect(usage).toMatch(/^Usage: eventstore \[serve\|migrate\|token\]/);
    for (const { flag, env } of settingsList()) {
      expect(usage).toMatch(new RegExp(`^\\s+${flag}\\s+${env}\\s+\\S`, "m"));
    }
    expect(usage).toContain("serve");
    expect(usage).toContain("migrate");
    expect(p.stderr()).toBe("");
  });
});

describe("bad command lines", () => {
  test("an unknown flag exits 2 naming the flag, with the usage on stderr", async () => {
    const p = cli(["serve", "--no-such-flag"]);
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toContain("--no-such-flag");
    expect(p.stderr()).toContain("Usage: eventstore");
    expect(p.logs.find((l) => l.msg === "ready")).toBeUndefined();
  });

  test("an unknown command exits 2 naming the command", async () => {
    const p = cli(["frobnicate"]);
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toContain("unknown command: frobnicate");
  });

  test("a port that is not a number exits 2 naming the setting", async () => {
    const p = cli(["serve", "--port", "eighty"], { DATA_DIR: "memory" });
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toMatch(/--port \(PORT\) must be an integer in 0\.\.65535, got "eighty"/);
  });

  test("a DATABASE_URL whose database does not exist exits 1 saying how to create it", async () => {
    const p = cli(["serve"], { DATABASE_URL: withDatabase(adminUrl(), "es_no_such_database"), PORT: "0" });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toContain('database "es_no_such_database" does not exist');
    expect(p.stderr()).toContain("create it (createdb es_no_such_database");
  });

  test("--tls-cert without --tls-key exits 2", async () => {
    const p = cli(["serve", "--tls-cert", "/nonexistent.pem"], { DATA_DIR: "memory" });
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toContain("--tls-cert and --tls-key go together");
  });
});

describe("eventstore migrate", () => {
  test("creates the schema on a fresh database, and a second run finds nothing to do", async () => {
    const db = await freshDatabase();
    const first = cli(["migrate"], { DATABASE_URL: db.url });
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(first.logs.map((l) => l.msg)).toContain("migrated");
    expect(await appliedMigrations(db.url)).toEqual(MIGRATION_VERSIONS);

    const sql = postgres(db.url, { max: 1, onnotice: () => {} });
    try {
      const tables = await sql<{ table_name: string }[]>`
        select table_name from information_schema.tables where table_schema = 'eventstore' order by table_name`;
      expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(["events", "log", "schema_migrations", "streams"]));
    } finally {
      await sql.end();
    }

    const second = cli(["migrate"], { DATABASE_URL: db.url });
    expect(await second.exited).toEqual({ code: 0, signal: null });
    expect(await appliedMigrations(db.url)).toEqual(MIGRATION_VERSIONS);
  });

  test("migrates started at once on one fresh database all succeed and apply each migration once", async () => {
    // Several rounds: without the lock, a round fails often but not always.
    for (let round = 0; round < 3; round++) {
      const db = await freshDatabase();
      const runs = [0, 1, 2, 3].map(() => cli(["migrate"], { DATABASE_URL: db.url }));
      const results = await Promise.all(runs.map((r) => r.exited));
      for (const [i, result] of results.entries()) {
        expect({ result, stderr: runs[i].stderr() }).toEqual({ result: { code: 0, signal: null }, stderr: "" });
      }
      expect(await appliedMigrations(db.url)).toEqual(MIGRATION_VERSIONS);
    }
  });

  test("two servers started at once on one fresh database both become ready", async () => {
    const db = await freshDatabase();
    const servers = [0, 1].map(() => cli(["serve"], { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1" }));
    try {
      const ready = await Promise.all(servers.map((s) => s.waitForLog("ready")));
      for (const r of ready) expect(await servingStatus(r.port as number)).toBe(ServingStatus.SERVING);
      expect(await appliedMigrations(db.url)).toEqual(MIGRATION_VERSIONS);
    } finally {
      await Promise.all(servers.map(stop));
    }
  });
});

describe("eventstore serve", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await freshDatabase();
  });

  test("with PORT=0 it logs one ready line with the port it got, and serves there", async () => {
    const p = cli(["serve"], { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1" });
    const ready = await p.waitForLog("ready");
    expect(ready).toMatchObject({ level: "info", store: "postgres" });
    expect(typeof ready.port).toBe("number");
    expect(ready.port).toBeGreaterThan(0);
    expect(ready.address).toBe(`http://127.0.0.1:${ready.port as number}`);
    expect(await servingStatus(ready.port as number)).toBe(ServingStatus.SERVING);
    expect(await stop(p)).toEqual({ code: 0, signal: null });
    expect(p.logs.filter((l) => l.msg === "ready")).toHaveLength(1);
    for (const line of p.stdout().trim().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
  });

  test("a stop while it waits for an unreachable database is a clean exit", async () => {
    const closed = await freePort();
    const p = cli(["serve"], { DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/postgres`, PORT: "0", HOST: "127.0.0.1" });
    await p.waitForLog("database unavailable; retrying");
    expect(await stop(p)).toEqual({ code: 0, signal: null });
    expect(p.logs.map((l) => l.msg).slice(-2)).toEqual(["shutting down", "stopped"]);
  });

  test("a failing migrate tells the operator the cause", async () => {
    const p = cli(["migrate"], { DATABASE_URL: withDatabase(db.url, "no_such_database_here") });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toMatch(/caused by: .*no_such_database_here/);
  });

  test("no command means serve", async () => {
    const p = cli([], { DATABASE_URL: db.url, PORT: "0", HOST: "127.0.0.1" });
    const ready = await p.waitForLog("ready");
    expect(await servingStatus(ready.port as number)).toBe(ServingStatus.SERVING);
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("it listens on the port that PORT says", async () => {
    const port = await freePort();
    const p = cli(["serve"], { DATABASE_URL: db.url, PORT: String(port), HOST: "127.0.0.1" });
    expect((await p.waitForLog("ready")).port).toBe(port);
    expect(await servingStatus(port)).toBe(ServingStatus.SERVING);
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("--port wins over PORT, and --database-url over DATABASE_URL", async () => {
    const [envPort, flagPort] = [await freePort(), await freePort()];
    const p = cli(["serve", "--port", String(flagPort), "--database-url", db.url, "--host", "127.0.0.1"], {
      DATABASE_URL: "postgres://nobody@127.0.0.1:1/nowhere",
      PORT: String(envPort),
      HOST: "203.0.113.1",
    });
    const ready = await p.waitForLog("ready");
    expect(ready.port).toBe(flagPort);
    expect(await servingStatus(flagPort)).toBe(ServingStatus.SERVING);
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("a port already taken makes it exit non-zero with a message", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const p = cli(["serve"], { DATABASE_URL: db.url, PORT: String(port), HOST: "127.0.0.1" });
      const { code } = await p.exited;
      expect(code).not.toBe(0);
      expect(p.stderr()).toContain("EADDRINUSE");
      expect(p.logs.find((l) => l.msg === "ready")).toBeUndefined();
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describe("the safe default", () => {
  let authDir: string;
  beforeAll(() => {
    authDir = mkdtempSync(join(tmpdir(), "eventstore-cli-auth-"));
    writeFileSync(join(authDir, "auth.yaml"), "rules: []\n");
  });
  afterAll(() => rmSync(authDir, { recursive: true, force: true }));

  test("without authentication it serves loopback only, and its ready line says so", async () => {
    const p = cli(["serve"], { DATA_DIR: "memory", PORT: "0" });
    const ready = await p.waitForLog("ready");
    expect(ready.address).toBe(`http://127.0.0.1:${ready.port as number}`);
    expect(ready.authentication).toBe("none: loopback only");
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("another address without authentication is refused at start, naming both ways out", async () => {
    const p = cli(["serve"], { DATA_DIR: "memory", PORT: "0", HOST: "0.0.0.0" });
    expect((await p.exited).code).toBe(2);
    expect(p.stderr()).toContain("--auth-file");
    expect(p.stderr()).toContain("--insecure");
    expect(p.logs.find((l) => l.msg === "ready")).toBeUndefined();
  });

  test.each([
    ["the flag", ["serve", "--insecure"], {}],
    ["INSECURE=true", ["serve"], { INSECURE: "true" }],
  ])("--insecure (%s) serves anonymous clients on every address, and the ready line warns", async (_how, args, env) => {
    const p = cli(args, { DATA_DIR: "memory", PORT: "0", HOST: "0.0.0.0", ...env });
    const ready = await p.waitForLog("ready");
    expect(ready.address).toBe(`http://0.0.0.0:${ready.port as number}`);
    expect(ready.authentication).toMatch(/--insecure, anyone/);
    expect(await servingStatus(ready.port as number)).toBe(ServingStatus.SERVING);
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("with an auth file it listens on every address; SIGHUP reads the file again", async () => {
    const p = cli(["serve"], { DATA_DIR: "memory", PORT: "0", AUTH_FILE: join(authDir, "auth.yaml") });
    const ready = await p.waitForLog("ready");
    expect(ready.address).toBe(`http://0.0.0.0:${ready.port as number}`);
    p.child.kill("SIGHUP");
    expect(await p.waitForLog("auth configuration reloaded")).toMatchObject({ rules: 0 });
    expect(await stop(p)).toEqual({ code: 0, signal: null });
  });

  test("an auth file with a mistake stops the start, naming the file and the place", async () => {
    writeFileSync(join(authDir, "bad.yaml"), "rules:\n  - principals: [a]\n    permissions: [reed]\n");
    const p = cli(["serve"], { DATA_DIR: "memory", PORT: "0", AUTH_FILE: join(authDir, "bad.yaml") });
    expect((await p.exited).code).toBe(1);
    expect(p.stderr()).toContain(`${join(authDir, "bad.yaml")}: rules[0].permissions[0]: must be one of read, write`);
  });

  test("eventstore token prints a new key and the SHA-256 line the auth file takes", async () => {
    const p = cli(["token"]);
    expect((await p.exited).code).toBe(0);
    const [, token] = /^  (\S+)$/m.exec(p.stdout()) ?? [];
    const [, hash] = /sha256: ([0-9a-f]{64})$/m.exec(p.stdout()) ?? [];
    expect(token.length).toBeGreaterThanOrEqual(43);
    expect(createHash("sha256").update(token).digest("hex")).toBe(hash);
  });
});

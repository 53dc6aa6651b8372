import { spawn } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { createGrpcJsClient, unary } from "../support/grpc-js-client";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// The connection attacks of issue 11, replayed against the built server with its default limits
// (headers and body timeouts 10 s): 2,000 HTTP/1.1 clients sending headers a byte a second, and
// 500 unary gRPC calls that announce 20 MiB, send some of it and stop. Meanwhile a second client
// asks health and appends one event; its answers and the server's memory must hold.
//
//   TEST_SKIP_BUILD=1 NODE_OPTIONS=--experimental-vm-modules npx jest test/security/connection-attack.test.ts
//
// (ATTACK_SOCKETS, ATTACK_CALLS and ATTACK_CALL_BYTES change the sizes; the figures print as one JSON line.)

const SOCKETS = Number(process.env.ATTACK_SOCKETS ?? 2000);
const CALLS = Number(process.env.ATTACK_CALLS ?? 500);
/** What each stalled call sends of the 20 MiB it announces. */
const CALL_BYTES = Number(process.env.ATTACK_CALL_BYTES ?? 256 * 1024);
const ATTACKER = join(__dirname, "fixtures/connection-attacker.js");
const TIMEOUT_MS = 10_000;
/**
 * The bounds of issue 11: a second client's p99, and the server's memory. An append waits for
 * PostgreSQL's commit, on the two cores the server, the attacker, this client and PostgreSQL
 * share here: its p99 measured 290-390 ms, so it is held to 500 ms.
 */
const MAX_HEALTH_P99_MS = 250;
const MAX_APPEND_P99_MS = 500;
/** A timeout is noticed within Node's check interval; the rest is this crowded machine. */
const SLACK_MS = 5000;
const MAX_RSS_BYTES = 512 * 1024 * 1024;

let db: TestDatabase;
let server: ServerProcess;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startServerProcess({ DATABASE_URL: db.url });
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** What the attacker saw: how many of its clients the server cut off, and how long that took. */
interface AttackOutcome {
  attackMs: number;
  slowClosedByServer: number;
  slowClosedMaxMs: number;
  callsResourceExhausted: number;
  callsEndedMaxMs: number;
}

/** Runs the attacker in a process of its own. */
function attack(): Promise<AttackOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATTACKER, String(server.port), String(SOCKETS), String(CALLS), String(CALL_BYTES)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the attacker exited with ${code}`))));
  });
}

test("slow HTTP/1.1 clients and stalled unary bodies are cut off in time, and a second client is still served", async () => {
  const health = new (grpc.makeGenericClientConstructor({}, "Health"))(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const store = createGrpcJsClient(`127.0.0.1:${server.port}`);
  const check = () =>
    new Promise<void>((resolve, reject) =>
      health.makeUnaryRequest("/grpc.health.v1.Health/Check", () => Buffer.alloc(0), (b: Buffer) => b, {}, (e) => (e ? reject(e) : resolve())),
    );
  await check();
  await unary(store, "Append", { stream: "probe-0", events: [{ type: "Probed" }] });
  const rssBefore = server.rss();

  // The second client, while the attack lasts: a health check every 50 ms, an append every 100 ms.
  let attacking = true;
  const healthMs: number[] = [];
  const appendMs: number[] = [];
  let probeErrors = 0;
  let maxRss = rssBefore;
  const probes = (async () => {
    for (let n = 1; attacking; n++) {
      const started = performance.now();
      const calls: Promise<unknown>[] = [check().then(() => healthMs.push(performance.now() - started))];
      if (n % 2 === 0) {
        calls.push(unary(store, "Append", { stream: `probe-${n}`, events: [{ type: "Probed" }] }).then(() => appendMs.push(performance.now() - started)));
      }
      await Promise.all(calls).catch(() => probeErrors++);
      maxRss = Math.max(maxRss, server.rss());
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const seen = await attack().finally(() => (attacking = false));
  await probes;
  health.close();
  store.close();

  healthMs.sort((a, b) => a - b);
  appendMs.sort((a, b) => a - b);
  const figures = {
    sockets: SOCKETS,
    calls: CALLS,
    callBytes: CALL_BYTES,
    ...seen,
    healthChecks: healthMs.length,
    healthP50Ms: Math.round(percentile(healthMs, 50)),
    healthP99Ms: Math.round(percentile(healthMs, 99)),
    appends: appendMs.length,
    appendP50Ms: Math.round(percentile(appendMs, 50)),
    appendP99Ms: Math.round(percentile(appendMs, 99)),
    probeErrors,
    rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
    rssMaxMiB: Math.round(maxRss / 2 ** 20),
    lagWarnings: server.logs.filter((l) => String(l.msg).startsWith("event loop lagging")).length,
  };
  console.log(JSON.stringify(figures));

  expect(figures.slowClosedByServer).toBe(SOCKETS);
  expect(figures.slowClosedMaxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  expect(figures.callsResourceExhausted).toBe(CALLS);
  expect(figures.callsEndedMaxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  expect(figures.probeErrors).toBe(0);
  expect(figures.healthP99Ms).toBeLessThan(MAX_HEALTH_P99_MS);
  expect(figures.appendP99Ms).toBeLessThan(MAX_APPEND_P99_MS);
  expect(maxRss).toBeLessThan(MAX_RSS_BYTES);
}, 60_000);

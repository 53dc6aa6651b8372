import { spawn } from "node:child_process";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { createGrpcJsClient, unary } from "../support/grpc-js-client";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

// The connection attacks of issue 11, replayed against the built server with its default limits
// (headers and body timeouts 10 s, request budget 128 MiB): 2,000 HTTP/1.1 clients sending
// headers a byte a second, and 500 unary gRPC calls that announce 20 MiB, send some of it and
// stop; then 500 such calls that send 1 MiB each, four times what the server may hold at once.
// Meanwhile a second client asks health and appends one event; its answers and the server's
// memory must hold.
//
//   TEST_SKIP_BUILD=1 NODE_OPTIONS=--experimental-vm-modules npx jest test/security/connection-attack.test.ts
//
// (ATTACK_SOCKETS, ATTACK_CALLS, ATTACK_CALL_BYTES, ATTACK_BUDGET_CALLS and ATTACK_BUDGET_CALL_BYTES
// change the sizes; the figures of each attack print as one JSON line.)

const SOCKETS = Number(process.env.ATTACK_SOCKETS ?? 2000);
const CALLS = Number(process.env.ATTACK_CALLS ?? 500);
/** What each stalled call sends of the 20 MiB it announces. */
const CALL_BYTES = Number(process.env.ATTACK_CALL_BYTES ?? 256 * 1024);
/** The request budget's attack: so many calls sending so much that together they pass it four times over. */
const BUDGET_CALLS = Number(process.env.ATTACK_BUDGET_CALLS ?? 500);
const BUDGET_CALL_BYTES = Number(process.env.ATTACK_BUDGET_CALL_BYTES ?? 1024 * 1024);
/** --max-buffered-request-bytes by default. */
const DEFAULT_BUDGET_BYTES = 128 * 1024 * 1024;
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
  /** Calls refused for the request budget (--max-buffered-request-bytes), and when their answer came (p50, max). */
  callsRefusedByBudget: number;
  callsRefusedByBudgetP50Ms: number | null;
  callsRefusedByBudgetMaxMs: number | null;
  /** Calls refused at their body timeout. */
  callsTimedOut: number;
}

/** Runs the attacker in a process of its own. */
function attack(sockets: number, calls: number, callBytes: number): Promise<AttackOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ATTACKER, String(server.port), String(sockets), String(calls), String(callBytes)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the attacker exited with ${code}`))));
  });
}

/**
 * Runs the attack while a second client asks health every 50 ms and appends one event every
 * 100 ms, and the server's RSS is sampled; answers what the attacker saw and the figures.
 */
async function underAttack(run: () => Promise<AttackOutcome>) {
  const health = new (grpc.makeGenericClientConstructor({}, "Health"))(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
  const store = createGrpcJsClient(`127.0.0.1:${server.port}`);
  const check = () =>
    new Promise<void>((resolve, reject) =>
      health.makeUnaryRequest("/grpc.health.v1.Health/Check", () => Buffer.alloc(0), (b: Buffer) => b, {}, (e) => (e ? reject(e) : resolve())),
    );
  await check();
  await unary(store, "Append", { stream: "probe-0", events: [{ type: "Probed" }] });
  const rssBefore = server.rss();

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
  const seen = await run().finally(() => (attacking = false));
  await probes;
  // Once the attack is over, the server serves what it refused during it.
  const after = await unary(store, "Append", { stream: "probe-after", events: [{ type: "Probed", data: Buffer.alloc(512 * 1024, 0x62) }] }).then(
    () => "served",
    (e: grpc.ServiceError) => `${grpc.status[e.code]} ${e.details}`,
  );
  health.close();
  store.close();

  healthMs.sort((a, b) => a - b);
  appendMs.sort((a, b) => a - b);
  return {
    ...seen,
    healthChecks: healthMs.length,
    healthP50Ms: Math.round(percentile(healthMs, 50)),
    healthP99Ms: Math.round(percentile(healthMs, 99)),
    appends: appendMs.length,
    appendP50Ms: Math.round(percentile(appendMs, 50)),
    appendP99Ms: Math.round(percentile(appendMs, 99)),
    probeErrors,
    appendAfter: after,
    rssBeforeMiB: Math.round(rssBefore / 2 ** 20),
    rssMaxMiB: Math.round(maxRss / 2 ** 20),
    maxRss,
    lagWarnings: server.logs.filter((l) => String(l.msg).startsWith("event loop lagging")).length,
  };
}

test("slow HTTP/1.1 clients and stalled unary bodies are cut off in time, and a second client is still served", async () => {
  const figures = { sockets: SOCKETS, calls: CALLS, callBytes: CALL_BYTES, ...(await underAttack(() => attack(SOCKETS, CALLS, CALL_BYTES))) };
  console.log(JSON.stringify(figures));

  expect(figures.slowClosedByServer).toBe(SOCKETS);
  expect(figures.slowClosedMaxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  expect(figures.callsResourceExhausted).toBe(CALLS);
  expect(figures.callsEndedMaxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  expect(figures.probeErrors).toBe(0);
  expect(figures.appendAfter).toBe("served");
  expect(figures.healthP99Ms).toBeLessThan(MAX_HEALTH_P99_MS);
  expect(figures.appendP99Ms).toBeLessThan(MAX_APPEND_P99_MS);
  expect(figures.maxRss).toBeLessThan(MAX_RSS_BYTES);
}, 60_000);

test("500 stalled unary calls that send 1 MiB each are held to the request budget: those past it are refused at once", async () => {
  // 500 MiB sent in all, of which the server holds at most its budget (128 MiB by default).
  const figures = { sockets: 0, calls: BUDGET_CALLS, callBytes: BUDGET_CALL_BYTES, ...(await underAttack(() => attack(0, BUDGET_CALLS, BUDGET_CALL_BYTES))) };
  console.log(JSON.stringify(figures));

  expect(figures.callsResourceExhausted).toBe(BUDGET_CALLS);
  // Those that fit wait for their body timeout; the rest do not wait.
  expect(figures.callsRefusedByBudget + figures.callsTimedOut).toBe(BUDGET_CALLS);
  expect(figures.callsRefusedByBudget).toBeGreaterThanOrEqual(BUDGET_CALLS - DEFAULT_BUDGET_BYTES / BUDGET_CALL_BYTES);
  expect(figures.callsRefusedByBudgetMaxMs).toBeLessThan(TIMEOUT_MS);
  expect(figures.callsEndedMaxMs).toBeLessThan(TIMEOUT_MS + SLACK_MS);
  expect(figures.probeErrors).toBe(0);
  expect(figures.appendAfter).toBe("served");
  expect(figures.healthP99Ms).toBeLessThan(MAX_HEALTH_P99_MS);
  expect(figures.appendP99Ms).toBeLessThan(MAX_APPEND_P99_MS);
  expect(figures.maxRss).toBeLessThan(MAX_RSS_BYTES);
}, 60_000);

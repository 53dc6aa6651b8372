import { cpus, loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { openStore, type EventStore } from "../src/store";
import { enableBenchAuth } from "./bench-auth";
import { createBenchDatabase } from "./bench-database";
import { createCases, type BenchSettings, type CaseResult } from "./cases";
import { CLIENT_KINDS, type ClientKind } from "./event-store-client";
import { createIsolation } from "./isolated-server";
import { createRawBaseline } from "./raw-baseline";
import { formatTable } from "./report";
import { startServerProcess, type ServerProcess } from "./server-process";

const USAGE = `Usage: npm run bench -- [--quick] [--client ${CLIENT_KINDS.join("|")}] [--only NAME]
         [--auth] [--live-rate N] [--server-cpu-prof DIR]

Measures our server (as its own process, through gRPC) and a raw postgres.js baseline doing the
same work on a fresh database (the subscription cases: each on a database and server of their
own); one JSON line per case on stdout, a table on stderr.
  --quick     short runs and smaller logs (a little over a minute)
  --client    the gRPC client library (default ${CLIENT_KINDS[0]})
  --only      run only the cases whose name contains NAME, or one of NAME,NAME,... (the seed
              always runs)
  --auth      servers read an auth file of 21 keys and 6 rules; every client sends a key
  --live-rate N
              events per second that live-latency's writer appends (default 1000, in appends
              of N/100 events every 10 ms)
  --server-cpu-prof DIR
              start every server process with node --cpu-prof, its profile written to DIR
              when it stops (summarize one with node dist/bench/profile-summary.js FILE)
Environment: BENCH_DATABASE_URL, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres
`;

const FULL: BenchSettings = {
  warmupMs: 1000,
  durationMs: 6000,
  turns: 3,
  streamEvents: 10_000,
  logEvents: 50_000,
  subscriptions: {
    live: { subscribers: 100, channels: 4, tickMs: 10, eventsPerTick: 10, warmupMs: 1000, durationMs: 10_000 },
    fanOut: { subscribers: 1000, channels: 10, eventsPerAppend: 100, warmupMs: 1000, durationMs: 10_000 },
    catchUpEvents: 1_000_000,
  },
};
const QUICK: BenchSettings = {
  warmupMs: 200,
  durationMs: 800,
  // Two half turns, the sides in ABBA order (see measure): in one turn, the raw baseline always
  // ran after our server's side and paid for what that left PostgreSQL to do, and its figure
  // varied by 2x between runs of the same code.
  turns: 2,
  streamEvents: 10_000,
  logEvents: 15_000,
  subscriptions: {
    live: { ...FULL.subscriptions.live, warmupMs: 300, durationMs: 1500 },
    fanOut: { ...FULL.subscriptions.fanOut, warmupMs: 500, durationMs: 1500 },
    catchUpEvents: 100_000,
  },
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      quick: { type: "boolean" },
      client: { type: "string", default: CLIENT_KINDS[0] },
      only: { type: "string" },
      "server-cpu-prof": { type: "string" },
      "live-rate": { type: "string" },
      auth: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const clientKind = values.client as ClientKind;
  if (!CLIENT_KINDS.includes(clientKind)) throw new Error(`--client must be one of ${CLIENT_KINDS.join(", ")}`);
  const settings = values.quick ? QUICK : FULL;
  if (values["live-rate"] !== undefined) {
    const live = settings.subscriptions.live;
    const perTick = (Number(values["live-rate"]) * live.tickMs) / 1000;
    if (!Number.isInteger(perTick) || perTick < 1) throw new Error(`--live-rate must be a multiple of ${1000 / live.tickMs}`);
    live.eventsPerTick = perTick;
  }
  const adminUrl = process.env.BENCH_DATABASE_URL || process.env.DATABASE_URL || "postgres://postgres@127.0.0.1:5432/postgres";

  if (values.auth) process.stderr.write(`bench: authentication on (${enableBenchAuth()}): every call sends an API key\n`);
  const profileDir = values["server-cpu-prof"];
  const nodeArgs = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${resolve(profileDir)}`] : [];
  const db = await createBenchDatabase(adminUrl);
  const isolation = createIsolation(adminUrl, nodeArgs);
  let server: ServerProcess | undefined;
  let store: EventStore | undefined;
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      try {
        await store?.close();
        await server?.stop();
        await isolation.cleanup();
      } finally {
        await db.drop();
      }
    })());
  process.once("SIGINT", () => void cleanup().finally(() => process.exit(130)));
  try {
    const pg = await db.settings();
    process.stderr.write(
      `bench: database ${db.name}; PostgreSQL ${pg.server_version}, fsync ${pg.fsync}, ` +
        `synchronous_commit ${pg.synchronous_commit}, shared_buffers ${pg.shared_buffers}; ` +
        `${cpus().length} CPUs, load average ${loadavg()[0].toFixed(1)}; ` +
        `client ${clientKind}; ${values.quick ? "quick" : "full"} (${settings.durationMs} ms per side and case)\n`,
    );
    server = await startServerProcess({ databaseUrl: db.url, nodeArgs });
    // After the server: it has migrated the database.
    store = await openStore({ location: { kind: "postgres", url: db.url }, migrate: false });
    const raw = createRawBaseline(db.url);
    await raw.setup();
    const results: CaseResult[] = [];
    const only = values.only?.split(",");
    const cases = createCases().filter((c) => c.name === "seed" || !only || only.some((name) => c.name.includes(name)));
    for (const c of cases) {
      const started = performance.now();
      const result = await c.run({ server, clientKind, store, raw, settings, isolation });
      process.stderr.write(`bench: ${c.name} done in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
      if (c.name === "seed") continue;
      const line = { ...result, client: clientKind };
      results.push(line);
      process.stdout.write(JSON.stringify(line) + "\n");
    }
    process.stderr.write(`\n${formatTable(results)}load average ${loadavg()[0].toFixed(1)} at the end\n`);
    return 0;
  } finally {
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);

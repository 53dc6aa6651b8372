// A well-behaved client, in a process of its own, while an attack runs against the server: every
// 50 ms a health check and a one-event append, each on its own connection and timed. Plain
// CommonJS because it runs outside jest, without the TypeScript transform; so that the attack's
// work in the test process cannot delay (or hide) what this client sees.
//
//   node attack-probe.cjs <host:port> <duration ms> [bearer token]
//
// Prints one JSON line: { health: [ms...], append: [ms...], failures: [...] }; a call that fails
// or takes over 5 s counts as 5000 ms and is listed in failures.
const { join } = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const [address, durationText, token] = process.argv.slice(2);
const PROTO = join(__dirname, "../../proto");
const load = (file) =>
  grpc.loadPackageDefinition(protoLoader.loadSync(join(PROTO, file), { includeDirs: [PROTO], longs: String, enums: String, defaults: true }));
const health = new (load("grpc/health/v1/health.proto").grpc.health.v1.Health)(address, grpc.credentials.createInsecure());
const store = new (load("eventstore/v1/eventstore.proto").eventstore.v1.EventStoreService)(address, grpc.credentials.createInsecure());
const metadata = new grpc.Metadata();
if (token) metadata.set("authorization", `Bearer ${token}`);
const TIMEOUT_MS = 5000;
const results = { health: [], append: [], failures: [] };

function timed(kind, call) {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    call({ deadline: Date.now() + TIMEOUT_MS }, (err) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (err) results.failures.push(`${kind}: ${err.code} ${err.details}`);
      results[kind].push(err ? TIMEOUT_MS : ms);
      resolve();
    });
  });
}

async function main() {
  const until = Date.now() + Number(durationText);
  const pending = [];
  for (let n = 0; Date.now() < until; n++) {
    pending.push(timed("health", (options, done) => health.check({ service: "" }, metadata, options, done)));
    pending.push(
      timed("append", (options, done) =>
        store.append({ stream: `probe-${process.pid}-${n}`, events: [{ type: "Probe", data: Buffer.from("{}"), contentType: "application/json" }] }, metadata, options, done),
      ),
    );
    await new Promise((r) => setTimeout(r, 50));
  }
  await Promise.all(pending);
  process.stdout.write(JSON.stringify(results) + "\n");
  health.close();
  store.close();
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e));
    process.exit(1);
  },
);

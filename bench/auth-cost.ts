import { silentLogger } from "../src/domain";
import { loadAccessControl } from "../src/server/access-control";
import { enableBenchAuth } from "./bench-auth";

/**
 * What authentication and a rule check cost one call, in this process: the work the server
 * adds to every call when an auth file is given (`npm run bench -- --auth`), without the gRPC
 * hop around it, whose noise between runs (10-20% here) hides a cost this small.
 *   node dist/bench/auth-cost.js [CALLS]
 * Prints one JSON line: microseconds per call for an API key's authentication, for a rule check,
 * and for both, over the benchmark's auth file (21 keys, 7 rules).
 */
async function main(calls: number): Promise<void> {
  const file = enableBenchAuth();
  const access = loadAccessControl(file, silentLogger);
  const credentials = { authorization: `Bearer ${process.env.BENCH_TOKEN}` };
  const target = { kind: "stream", name: "order-1" } as const;
  const principal = await access.authenticate(credentials);
  const time = async (work: () => unknown): Promise<number> => {
    for (let i = 0; i < 10_000; i++) await work();
    const started = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await work();
    return Number(process.hrtime.bigint() - started) / 1000 / calls;
  };
  const authenticate = await time(() => access.authenticate(credentials));
  const authorize = await time(() => {
    if (!access.policy().allows(principal, "write", target)) throw new Error("the benchmark's key may not write");
  });
  const both = await time(async () => access.policy().allows(await access.authenticate(credentials), "write", target));
  access.close();
  process.stdout.write(JSON.stringify({ case: "auth-cost", calls, authenticate_us: round(authenticate), authorize_us: round(authorize), both_us: round(both) }) + "\n");
}

const round = (n: number) => Math.round(n * 100) / 100;

main(Number(process.argv[2] ?? 200_000)).catch((e) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});

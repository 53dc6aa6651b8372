/**
 * Runs one of the example's persistent projections until it is stopped (from here with SIGTERM,
 * or from anywhere through the server) or deleted; prints a JSON line at start, each time it
 * persists, and at the end.
 *
 *   EVENTSTORE_URL=http://127.0.0.1:50051 node dist/examples/bank-account/run-projection.js balances
 *   DATABASE_URL=postgres://... node dist/examples/bank-account/run-projection.js balances-table
 *
 * Settings (environment): PROJECTION_NAME (default: the kind), ACCOUNT_CATEGORY (account),
 * TABLE (account_balances), LEASE_TTL_MS (10000), CONTROL_INTERVAL_MS (1000).
 */
import postgres from "postgres";
import { createEventStoreClient } from "../../src/client";
import { balances, balancesTable } from "./projections";

async function main(): Promise<void> {
  const kind = process.argv[2] ?? "balances";
  const name = process.env.PROJECTION_NAME ?? kind;
  const category = process.env.ACCOUNT_CATEGORY ?? "account";
  const client = createEventStoreClient({ url: process.env.EVENTSTORE_URL ?? "http://127.0.0.1:50051" });
  const options = {
    leaseTtlMs: Number(process.env.LEASE_TTL_MS ?? 10_000),
    controlIntervalMs: Number(process.env.CONTROL_INTERVAL_MS ?? 1000),
    persistEveryEvents: 20,
    persistEveryMs: 200,
    onWaiting: (holder: string) => print({ waiting: holder }),
  };
  const sql = kind === "balances-table" ? postgres(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres", { onnotice: () => {} }) : undefined;
  const projection = sql
    ? balancesTable(client, sql, name, process.env.TABLE ?? "account_balances", category, options)
    : balances(client, name, category, options);
  process.once("SIGTERM", () => void projection.stop());
  print({ started: name, pid: process.pid });
  await projection.run();
  print({ stopped: name, status: projection.status, state: projection.state });
  client.close();
  await sql?.end();
}

function print(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

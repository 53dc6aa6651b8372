/**
 * The bank-account example, start to end:
 *
 *   npm run example
 *
 * It talks to the server at EVENTSTORE_URL; without one, it starts a server in this process on
 * DATABASE_URL (or on the embedded database). The read-model step writes a table through
 * DATABASE_URL (default: the local PostgreSQL) and is skipped if that does not answer.
 */
import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { createEventStoreClient, WrongExpectedRevisionError, type EventStoreClient } from "../../src/client";
import { loadConfig } from "../../src/server/config";
import { startServer } from "../../src/server/start-server";
import { BankAccount, bankAccounts } from "./bank-account";
import { balances, balancesTable, totals } from "./projections";

const LOCAL_DATABASE = "postgres://postgres@127.0.0.1:5432/postgres";

async function main(): Promise<void> {
  const { url, stop } = await eventStore();
  const client = createEventStoreClient({ url });
  // A category of its own per run, so that runs on one database do not mix.
  const category = `bank${randomBytes(3).toString("hex")}`;
  try {
    await accounts(client, category);
    await projections(client, category, url);
    await readModel(client, category);
  } finally {
    client.close();
    await stop();
  }
}

async function accounts(client: EventStoreClient, category: string): Promise<void> {
  step("1. Aggregates, saved and loaded through a repository", `streams ${category}-<id>`);
  const repository = bankAccounts(client, category);
  await repository.save(new BankAccount("alice").open("Alice").deposit(100));
  await repository.save(new BankAccount("bob").open("Bob").deposit(20));
  const alice = await repository.load("alice");
  alice.deposit(2500).withdraw(30);
  await repository.save(alice);
  const reloaded = await repository.load("alice");
  show({ id: reloaded.id, owner: reloaded.owner, balance: reloaded.balance, version: reloaded.version });

  step("2. Two writers load bob; the second save is refused: no update is lost");
  const first = await repository.load("bob");
  const second = await repository.load("bob");
  await repository.save(first.deposit(5));
  try {
    await repository.save(second.withdraw(20));
    throw new Error("the second save was accepted");
  } catch (e) {
    if (!(e instanceof WrongExpectedRevisionError)) throw e;
    show({ refused: e.name, stream: e.stream, expected: e.expectedRevision, actual: e.actualRevision });
  }
  show({ bob: (await repository.load("bob")).balance });

  step("3. A query folds every account's events");
  show(await totals(client, category));
}

async function projections(client: EventStoreClient, category: string, url: string): Promise<void> {
  const name = `${category}-balances`;
  step("4. A persistent projection: its state and position live in the server", `projection ${name}`);
  await balances(client, name, category).run({ keepRunning: false });
  let record = await client.projections.get(name);
  show({ status: record.status, position: record.position, version: record.version, state: JSON.parse(new TextDecoder().decode(record.state)) });

  const repository = bankAccounts(client, category);
  await repository.save((await repository.load("bob")).deposit(1000));
  // A new projector, as after a restart: it carries on from the record, and handles only the new event.
  const restarted = balances(client, name, category);
  await restarted.run({ keepRunning: false });
  show({ afterRestart: restarted.state });
  const emitted = [];
  for await (const e of client.readStream(name)) emitted.push(e.type);
  show({ emittedTo: name, events: emitted });

  step("5. Another client asks the running projection to stop, to reset, to delete; it obeys");
  const live = `${name}-live`;
  const projector = balances(client, live, category, { controlIntervalMs: 200 });
  const other = createEventStoreClient({ url }); // as a second process would
  const status = async () => (await other.projections.get(live).catch(() => undefined))?.status;
  try {
    let run = projector.run();
    await waitFor(async () => (await status()) === "running");
    await other.projections.updateStatus(live, "stopping");
    await run;
    show({ asked: "stopping", now: await status(), handled: projector.state.handled });

    run = projector.run();
    await waitFor(async () => (await status()) === "running");
    const before = (await other.projections.get(live)).version;
    await other.projections.updateStatus(live, "resetting");
    await waitFor(async () => (await other.projections.get(live)).version > before + 1n && (await status()) === "running");
    show({ asked: "resetting", now: await status(), version: `${before} -> ${(await other.projections.get(live)).version}` });

    await other.projections.updateStatus(live, "deleting");
    await run;
    show({ asked: "deleting", now: (await status()) ?? "no record" });
  } finally {
    other.close();
  }
}

async function readModel(client: EventStoreClient, category: string): Promise<void> {
  const url = process.env.DATABASE_URL ?? LOCAL_DATABASE;
  const sql = postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 3 });
  try {
    await sql`select 1`;
  } catch {
    step("6. Read model: skipped, no PostgreSQL at DATABASE_URL");
    await sql.end();
    return;
  }
  const table = `${category}_balances`;
  step("6. A read-model projection fills a PostgreSQL table", `table ${table}`);
  try {
    const projector = balancesTable(client, sql, `${category}-table`, table, category);
    await projector.run({ keepRunning: false });
    const rows = await sql`select id, owner, balance::float8 as balance, transactions from ${sql(table)} order by id`;
    show(rows.map((r) => ({ ...r })));
    await projector.delete(); // the example cleans up after itself
  } finally {
    await sql.end();
  }
}

async function eventStore(): Promise<{ url: string; stop: () => Promise<void> }> {
  if (process.env.EVENTSTORE_URL) return { url: process.env.EVENTSTORE_URL, stop: async () => {} };
  const location = process.env.DATABASE_URL
    ? ({ kind: "postgres", url: process.env.DATABASE_URL } as const)
    : ({ kind: "embedded", dataDir: "memory" } as const);
  const quiet = { info() {}, warn() {}, error() {} };
  const server = await startServer({ ...loadConfig([], {}), host: "127.0.0.1", port: 0, location }, quiet);
  console.log(`(a server of its own on port ${server.port}, ${location.kind} database)`);
  return { url: `http://127.0.0.1:${server.port}`, stop: () => server.stop() };
}

async function waitFor(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
}

function step(title: string, detail = ""): void {
  console.log(`\n${title}${detail ? ` (${detail})` : ""}`);
}

function show(value: unknown): void {
  console.log(`  ${JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

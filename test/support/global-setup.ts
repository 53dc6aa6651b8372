import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";

const LOCAL = "postgres://postgres@127.0.0.1:5432/postgres";

/**
 * Finds a PostgreSQL for the tests: DATABASE_URL if set, else the local server, else a
 * throwaway cluster started with initdb/pg_ctl. Also builds dist/, which the tests that run
 * the server as a process (CLI, signals, restarts) start.
 */
export default async function globalSetup(): Promise<void> {
  const url = await findPostgres();
  process.env.TEST_ADMIN_DATABASE_URL = url;
  // TEST_SKIP_BUILD=1: for a run of tests that start no server process, on a tree mid-change.
  if (process.env.TEST_SKIP_BUILD !== "1") execFileSync("npm", ["run", "--silent", "build"], { stdio: "inherit" });
}

async function findPostgres(): Promise<string> {
  if (process.env.DATABASE_URL) {
    if (await answers(process.env.DATABASE_URL)) return process.env.DATABASE_URL;
    throw new Error(`DATABASE_URL is set but ${redact(process.env.DATABASE_URL)} does not answer`);
  }
  if (await answers(LOCAL)) return LOCAL;
  const bin = postgresBin();
  if (!bin) {
    throw new Error(
      "No PostgreSQL for the tests: set DATABASE_URL, run one at 127.0.0.1:5432 (trust auth, user postgres), " +
        "or install PostgreSQL so that initdb and pg_ctl are available.",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "eventstore-pg-"));
  const port = 55432;
  const asUser = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  if (asUser.length) execFileSync("chown", ["postgres", dir]);
  run([...asUser, join(bin, "initdb"), "-D", join(dir, "data"), "-U", "postgres", "--auth=trust"]);
  run([...asUser, join(bin, "pg_ctl"), "-D", join(dir, "data"), "-o", `-p ${port} -k ${dir}`, "-l", join(dir, "log"), "-w", "start"]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  process.env.TEST_THROWAWAY_PG = join(dir, "data");
  return url;
}

function run(cmd: string[]) {
  const r = spawnSync(cmd[0], cmd.slice(1), { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`${cmd.join(" ")} failed`);
}

function postgresBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  return versions.map((v) => join(root, v, "bin")).find((b) => existsSync(join(b, "initdb")));
}

async function answers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

function redact(url: string): string {
  const u = new URL(url);
  u.password = u.password ? "***" : "";
  return u.toString();
}

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Sql } from "./sql";

const MIGRATIONS_DIR = join(__dirname, "migrations");
// Any constant will do, as long as every server uses the same one.
const MIGRATION_LOCK = 7_301_984_251;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f.slice(5, -4), sql: readFileSync(join(dir, f), "utf8") }));
}

/**
 * Applies the migrations not yet applied, in order, in one transaction under an advisory lock:
 * servers starting together take turns, and the later ones find nothing left to do.
 * Returns the versions it applied.
 *
 * Migrations run without the statement timeout: one may build an index over the whole log,
 * and a server waits for another's migration on the lock. Cut short, a migration would roll
 * back, and every start after it would fail the same way; they are an operator's deliberate
 * step, run once, not a client's request.
 */
export async function migrate(sql: Sql, migrations = loadMigrations()): Promise<number[]> {
  // A schema that is up to date is only read: a server may run as a role without the right to
  // create or alter anything (docs/operations.md), once a migration role has migrated.
  if (await upToDate(sql, migrations)) return [];
  return sql.begin(async (tx) => {
    await tx`set local statement_timeout = 0`;
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`create schema if not exists eventstore`;
    await tx`
      create table if not exists eventstore.schema_migrations (
        version int primary key,
        name text not null,
        applied_at timestamptz not null default now()
      )`;
    const applied = new Set((await tx<{ version: number }[]>`select version from eventstore.schema_migrations`).map((r) => r.version));
    const done: number[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      await tx.unsafe(m.sql).simple();
      await tx`insert into eventstore.schema_migrations (version, name) values (${m.version}, ${m.name})`;
      done.push(m.version);
    }
    return done;
  }) as Promise<number[]>;
}

/** Whether every migration is applied: read without a lock, and without DDL. */
async function upToDate(sql: Sql, migrations: Migration[]): Promise<boolean> {
  const [{ exists }] = await sql<{ exists: boolean }[]>`select to_regclass('eventstore.schema_migrations') is not null as exists`;
  if (!exists) return false;
  const applied = new Set((await sql<{ version: number }[]>`select version from eventstore.schema_migrations`).map((r) => r.version));
  return migrations.every((m) => applied.has(m.version));
}

import { randomBytes } from "node:crypto";
import postgres from "postgres";

export interface BenchDatabase {
  name: string;
  url: string;
  /** The PostgreSQL settings that decide write throughput, as `SHOW` reports them. */
  settings(): Promise<Record<string, string>>;
  drop(): Promise<void>;
}

const SETTINGS = ["server_version", "fsync", "synchronous_commit", "shared_buffers", "wal_level", "max_connections"];

/** A fresh database `bench_<random>` on the server of `adminUrl`, for one benchmark run. */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `bench_${randomBytes(6).toString("hex")}`;
  await withAdmin(adminUrl, (sql) => sql.unsafe(`create database ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    settings: () =>
      withAdmin(adminUrl, async (sql) => {
        const out: Record<string, string> = {};
        for (const setting of SETTINGS) out[setting] = (await sql.unsafe(`show ${setting}`))[0][setting] as string;
        return out;
      }),
    drop: () => withAdmin(adminUrl, (sql) => sql.unsafe(`drop database if exists ${name} with (force)`)).then(() => undefined),
  };
}

async function withAdmin<T>(adminUrl: string, work: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    return await work(sql);
  } finally {
    await sql.end();
  }
}

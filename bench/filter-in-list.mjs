// What an `in` matcher on a metadata key costs PostgreSQL, by the total bytes of its values:
// the condition store/postgres/filter-sql.ts makes, on a table of ROWS events whose values share
// a long prefix with the operands (so that each comparison walks them) and none of which match
// (so that the whole table is read). One JSON line per list on stdout; docs/regex-engine.md
// has the figures.
//
//   node bench/filter-in-list.mjs [ROWS]      (DATABASE_URL, else the local server)
import postgres from "postgres";

const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const rows = Number(process.argv[2] ?? 10_000);
const name = `filter_in_list_${process.pid}`;
const admin = postgres(url, { onnotice: () => {}, max: 1 });
await admin.unsafe(`create database ${name}`);
const target = new URL(url);
target.pathname = `/${name}`;
// A list can keep PostgreSQL busy for hours (19 MiB over 100,000 rows ran past 14 minutes).
const TIMEOUT_MS = 60_000;
const sql = postgres(target.href, { onnotice: () => {}, max: 1, connection: { statement_timeout: TIMEOUT_MS } });
try {
  await sql`create table events (position bigserial primary key, metadata jsonb not null)`;
  await sql`insert into events (metadata) select jsonb_build_object('k', repeat('x', 500) || g::text) from generate_series(1, ${rows}) g`;
  await sql`analyze events`;
  for (const [count, bytes] of [[1, 10], [99, 100], [99, 600], [99, 2_000], [99, 20_000], [99, 200_000]]) {
    const list = JSON.stringify(Array.from({ length: count }, (_, i) => "x".repeat(bytes - 6) + String(i).padStart(6, "0")));
    const samples = [];
    try {
      for (let run = 0; run < 3 && (samples[0] ?? 0) < 20_000; run++) {
        const started = performance.now();
        await sql`select e.position from events e
          where (e.metadata -> ${"k"}::text) in (select jsonb_array_elements(${list}::text::jsonb))
          order by e.position limit 1000`;
        samples.push(performance.now() - started);
      }
    } catch (e) {
      if (e.code !== "57014") throw e; // query_canceled: the statement timeout
      samples.splice(0, samples.length, Infinity);
    }
    samples.sort((a, b) => a - b);
    const ms = samples[samples.length >> 1];
    console.log(JSON.stringify({ rows, values: count, bytesEach: bytes, listKiB: Math.round(list.length / 1024), ms: ms === Infinity ? `over ${TIMEOUT_MS}` : Math.round(ms) }));
  }
} finally {
  await sql.end();
  await admin.unsafe(`drop database ${name}`);
  await admin.end();
}

import { readFileSync } from "node:fs";
import { median } from "./stats";

/**
 * Turns the JSON lines of several `npm run bench` runs into the Markdown tables of
 * docs/benchmarks.md: per case and figure, the median and the range over the runs.
 *   node dist/bench/summarize.js run1.jsonl run2.jsonl run3.jsonl
 */
type Figure = [title: string, key: string, format: (v: number) => string];

const eps = (v: number) => Math.round(v).toLocaleString("en-US");
const ratio = (v: number) => v.toFixed(2);
const ms = (v: number) => v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2);
const mb = (v: number) => v.toFixed(0);

const THROUGHPUT: Figure[] = [
  ["ours ev/s", "ours_eps", eps],
  ["raw ev/s", "raw_eps", eps],
  ["**ratio**", "ratio", ratio],
  ["store ev/s", "store_eps", eps],
  ["store/raw", "store_ratio", ratio],
  ["raw+NOTIFY ev/s", "raw_notify_eps", eps],
  ["ours/raw+NOTIFY", "ratio_vs_notify", ratio],
];

const LATENCY: Figure[] = [
  ["ours p50 ms", "ours_p50_ms", ms],
  ["ours p99 ms", "ours_p99_ms", ms],
  ["store p50 ms", "store_p50_ms", ms],
  ["raw p50 ms", "raw_p50_ms", ms],
  ["raw p99 ms", "raw_p99_ms", ms],
  ["server RSS MB", "server_rss_mb", mb],
];

const pct = (v: number) => v.toFixed(0);

const kb = (v: number) => v.toFixed(1);
const count = (v: number) => v.toLocaleString("en-US");

/** Where the CPU went on each side, in percent of one core (the machine has two). */
const CPU: Figure[] = [
  ["ours: server %", "ours_server_cpu_pct", pct],
  ["ours: clients %", "ours_client_cpu_pct", pct],
  ["ours: PostgreSQL %", "ours_postgres_cpu_pct", pct],
  ["store: benchmark process %", "store_client_cpu_pct", pct],
  ["store: PostgreSQL %", "store_postgres_cpu_pct", pct],
  ["raw: clients %", "raw_client_cpu_pct", pct],
  ["raw: PostgreSQL %", "raw_postgres_cpu_pct", pct],
  ["raw+NOTIFY: clients %", "raw_notify_client_cpu_pct", pct],
  ["raw+NOTIFY: PostgreSQL %", "raw_notify_postgres_cpu_pct", pct],
];

/** The call-cost case: one row per kind of call. */
const CALL_KINDS: [title: string, key: string][] = [
  ["health check (gRPC)", "health"],
  ["GetStream (gRPC)", "get_stream"],
  ["Append, 1 event (gRPC)", "append"],
  ["store append, 1 event (in process)", "store_append"],
  ["raw single-row insert", "raw_insert"],
];

/** The subscription cases, each with figures of its own. */
const SUBSCRIPTIONS: Record<string, Figure[]> = {
  "live-latency": [
    ["written ev/s", "ours_written_eps", eps],
    ["delivered ev/s (all subscribers)", "delivered_eps", eps],
    ["**p50 ms**", "ours_p50_ms", ms],
    ["**p99 ms**", "ours_p99_ms", ms],
    ["max ms", "ours_max_ms", ms],
    ["raw p50 ms", "raw_p50_ms", ms],
    ["raw p99 ms", "raw_p99_ms", ms],
    ["raw max ms", "raw_max_ms", ms],
    ["server CPU %", "server_cpu_pct", pct],
    ["client CPU %", "client_cpu_pct", pct],
    ["client loop delay p99 ms", "client_loop_delay_p99_ms", ms],
    ["fell behind", "fell_behind", count],
  ],
  "fan-out": [
    ["LISTEN connections", "listen_connections", count],
    ["**KB per idle subscriber**", "kb_per_idle_subscriber", kb],
    ["RSS, no subscribers MB", "rss_no_subscribers_mb", mb],
    ["RSS, idle subscribers MB", "rss_idle_subscribers_mb", mb],
    ["first batch: answer ms", "first_batch_answer_ms", ms],
    ["first batch: earliest event ms", "first_batch_earliest_event_ms", ms],
    ["first batch: first event ms", "first_batch_first_event_ms", ms],
    ["first batch: all delivered ms", "first_batch_all_delivered_ms", ms],
    ["written ev/s", "written_eps", eps],
    ["**delivered ev/s (all subscribers)**", "delivered_eps", eps],
    ["per subscriber ev/s", "subscriber_eps_median", eps],
    ["server CPU %", "server_cpu_pct", pct],
    ["client CPU %", "client_cpu_pct", pct],
    ["fell behind", "fell_behind", count],
  ],
  "catch-up": [
    ["ours ev/s", "ours_eps", eps],
    ["raw ev/s", "raw_eps", eps],
    ["**ratio**", "ratio", ratio],
    ["ours ev/s, 4 MiB window", "ours_wide_window_eps", eps],
    ["ratio, 4 MiB window", "ratio_wide_window", ratio],
    ["ReadAll ev/s", "read_all_eps", eps],
    ["ReadAll ratio", "read_all_ratio", ratio],
    ["store ev/s", "store_eps", eps],
    ["store/raw", "store_ratio", ratio],
    ["ours s", "ours_s", (v) => v.toFixed(1)],
    ["server CPU %", "server_cpu_pct", pct],
    ["client CPU %", "client_cpu_pct", pct],
    ["others' CPU %", "others_cpu_pct", pct],
  ],
};

type Result = Record<string, number | string>;

function main(files: string[]): void {
  const byCase = new Map<string, Result[]>();
  for (const file of files) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (!line.startsWith("{")) continue;
      const result = JSON.parse(line) as Result;
      byCase.set(String(result.case), [...(byCase.get(String(result.case)) ?? []), result]);
    }
  }
  const subscriptions = new Map([...byCase].filter(([name]) => name in SUBSCRIPTIONS));
  const others = new Map([...byCase].filter(([name]) => !(name in SUBSCRIPTIONS) && name !== "call-cost" && name !== "seed"));
  process.stdout.write(`Runs: ${files.length}. Each cell: median (min–max).\n\n`);
  if (others.size > 0) process.stdout.write(table(others, THROUGHPUT) + "\n" + table(others, LATENCY) + "\n" + table(others, CPU));
  const calls = byCase.get("call-cost");
  if (calls) process.stdout.write("\n" + callCostTable(calls));
  for (const [name, results] of subscriptions) process.stdout.write("\n" + table(new Map([[name, results]]), SUBSCRIPTIONS[name]));
}

function table(byCase: Map<string, Result[]>, figures: Figure[]): string {
  const header = ["case", "clients", ...figures.map(([title]) => title)];
  const rows = [...byCase.entries()].map(([name, results]) => [
    `\`${name}\``,
    String(results[0].clients),
    ...figures.map(([, key, format]) => cell(results.map((r) => r[key]).filter((v): v is number => typeof v === "number"), format)),
  ]);
  return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n") + "\n";
}

function callCostTable(results: Result[]): string {
  const figure = (r: Result, key: string) => (typeof r[key] === "number" ? (r[key] as number) : undefined);
  const rows = CALL_KINDS.map(([title, kind]) => [
    title,
    ...["ms", "server_cpu_ms", "client_cpu_ms"].map((what) =>
      cell(results.map((r) => figure(r, `${kind}_${what}`)).filter((v): v is number => v !== undefined), (v) => v.toFixed(3)),
    ),
  ]);
  const header = ["call", "ms per call", "server CPU ms per call", "client CPU ms per call"];
  return [header, header.map(() => "---"), ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n") + "\n";
}

function cell(values: number[], format: (v: number) => string): string {
  if (values.length === 0) return "–";
  if (values.length === 1) return format(values[0]);
  return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

main(process.argv.slice(2));

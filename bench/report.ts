import type { CaseResult } from "./cases";

const COLUMNS: [title: string, cell: (r: CaseResult) => string][] = [
  ["case", (r) => String(r.case)],
  ["clients", (r) => String(r.clients)],
  ["ours ev/s", (r) => num(r.ours_eps)],
  ["store ev/s", (r) => num(r.store_eps)],
  ["raw ev/s", (r) => num(r.raw_eps)],
  ["ratio", (r) => num(r.ratio)],
  ["store/raw", (r) => num(r.store_ratio)],
  ["ours p50/p99 ms", (r) => `${num(r.ours_p50_ms)} / ${num(r.ours_p99_ms)}`],
  ["raw p50/p99 ms", (r) => `${num(r.raw_p50_ms)} / ${num(r.raw_p99_ms)}`],
  ["raw+notify ev/s", (r) => num(r.raw_notify_eps)],
  ["ratio vs notify", (r) => num(r.ratio_vs_notify)],
  ["server RSS MB", (r) => num(r.server_rss_mb)],
  ["ours CPU % server/client/pg", (r) => [r.ours_server_cpu_pct, r.ours_client_cpu_pct, r.ours_postgres_cpu_pct].map(num).join("/")],
  ["raw CPU % client/pg", (r) => [r.raw_client_cpu_pct, r.raw_postgres_cpu_pct].map(num).join("/")],
];

const SUBSCRIPTION_COLUMNS: [title: string, cell: (r: CaseResult) => string][] = [
  ["case", (r) => String(r.case)],
  ["subscribers", (r) => String(r.clients)],
  ["delivered ev/s", (r) => num(r.delivered_eps ?? r.ours_eps)],
  ["raw ev/s", (r) => num(r.raw_eps)],
  ["ratio", (r) => num(r.ratio)],
  ["ratio 4MiB window", (r) => num(r.ratio_wide_window)],
  ["ReadAll ratio", (r) => num(r.read_all_ratio)],
  ["p50/p99/max ms", (r) => triple(r.ours_p50_ms, r.ours_p99_ms, r.ours_max_ms)],
  ["raw p50/p99/max ms", (r) => triple(r.raw_p50_ms, r.raw_p99_ms, r.raw_max_ms)],
  ["CPU % server/client/pg/others", (r) => [r.server_cpu_pct, r.client_cpu_pct, r.postgres_cpu_pct, r.others_cpu_pct].map(num).join("/")],
  ["server RSS MB", (r) => num(r.server_rss_mb)],
  ["LISTEN conns", (r) => num(r.listen_connections)],
  ["KB/idle sub", (r) => num(r.kb_per_idle_subscriber)],
  ["fell behind", (r) => num(r.fell_behind)],
];

const CALL_KINDS = ["health", "get_stream", "append", "store_append", "raw_insert"];

const CALL_COST_COLUMNS: [title: string, cell: (r: CaseResult) => string][] = [
  ["call", (r) => String(r.kind)],
  ["ms per call", (r) => num(r.ms)],
  ["server CPU ms", (r) => num(r.server_cpu_ms)],
  ["client CPU ms", (r) => num(r.client_cpu_ms)],
];

/**
 * Plain-text tables of the case results, for people: reads and appends, then where a lone
 * call's time goes, then subscriptions.
 */
export function formatTable(results: CaseResult[]): string {
  const callCost = results.find((r) => r.case === "call-cost");
  const subscriptions = results.filter((r) => r.events_per_op === undefined && r !== callCost);
  const others = results.filter((r) => r.events_per_op !== undefined);
  const calls = callCost
    ? CALL_KINDS.map((kind) => ({
        kind,
        ms: callCost[`${kind}_ms`],
        server_cpu_ms: callCost[`${kind}_server_cpu_ms`],
        client_cpu_ms: callCost[`${kind}_client_cpu_ms`],
      }))
    : [];
  return [
    others.length > 0 ? table(COLUMNS, others) : "",
    calls.length > 0 ? table(CALL_COST_COLUMNS, calls) : "",
    subscriptions.length > 0 ? table(SUBSCRIPTION_COLUMNS, subscriptions) : "",
  ].filter((t) => t !== "").join("\n");
}

function table(columns: [title: string, cell: (r: CaseResult) => string][], results: CaseResult[]): string {
  const rows = [columns.map(([title]) => title), ...results.map((r) => columns.map(([, cell]) => cell(r)))];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n") + "\n";
}

function triple(a: string | number | undefined, b: string | number | undefined, c: string | number | undefined): string {
  return a === undefined ? "-" : `${num(a)} / ${num(b)} / ${num(c)}`;
}

function num(value: string | number | undefined): string {
  if (value === undefined || value === null) return "-";
  if (typeof value === "string") return value;
  return Number.isInteger(value) && Math.abs(value) >= 1000 ? value.toLocaleString("en-US") : String(value);
}

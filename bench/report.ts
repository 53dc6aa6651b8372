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
];

/** A plain-text table of the case results, for people. */
export function formatTable(results: CaseResult[]): string {
  const rows = [COLUMNS.map(([title]) => title), ...results.map((r) => COLUMNS.map(([, cell]) => cell(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n") + "\n";
}

function num(value: string | number | undefined): string {
  if (value === undefined || value === null) return "-";
  if (typeof value === "string") return value;
  return Number.isInteger(value) && Math.abs(value) >= 1000 ? value.toLocaleString("en-US") : String(value);
}

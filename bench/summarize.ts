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
  process.stdout.write(`Runs: ${files.length}. Each cell: median (min–max).\n\n`);
  process.stdout.write(table(byCase, THROUGHPUT) + "\n" + table(byCase, LATENCY));
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

function cell(values: number[], format: (v: number) => string): string {
  if (values.length === 0) return "–";
  if (values.length === 1) return format(values[0]);
  return `${format(median(values))} (${format(Math.min(...values))}–${format(Math.max(...values))})`;
}

main(process.argv.slice(2));

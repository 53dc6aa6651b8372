import { execFile } from "node:child_process";
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import type { ServerProcess } from "./server-process";

export interface AttackFigures {
  attack: string;
  /** p99 of a second client's health checks and one-event appends while the attack ran, ms. */
  healthP99Ms: number;
  appendP99Ms: number;
  /** Calls of that client that failed or took over 5 s. */
  probeFailures: number;
  /** The server's largest resident memory seen (sampled every 100 ms), MiB. */
  maxRssMiB: number;
  /** How long the attack took from its first byte to its end, ms. */
  attackMs: number;
  /** What the attack got: the codes or outcome it reports. */
  outcome: string;
}

const PROBE = join(__dirname, "attack-probe.cjs");
const run = promisify(execFile);

/**
 * Runs `attack` against the server while a well-behaved client (a process of its own) checks
 * health and appends one event every 50 ms, and the server's RSS is sampled. The probe runs for
 * `probeMs`, starting with the attack. SECURITY_FIGURES=<file> appends each result to that file
 * as a JSON line (docs/security.md quotes them).
 */
export async function underAttack(server: ServerProcess, attack: string, work: () => Promise<string>, probeMs: number): Promise<AttackFigures> {
  let maxRss = server.rss();
  const sampler = setInterval(() => {
    try {
      maxRss = Math.max(maxRss, server.rss());
    } catch {
      // the process is gone: the figures will say so through the probe's failures
    }
  }, 100);
  try {
    const probe = run(process.execPath, [PROBE, `127.0.0.1:${server.port}`, String(probeMs)], { maxBuffer: 64 * 1024 * 1024 });
    const started = performance.now();
    const outcome = await work();
    const attackMs = performance.now() - started;
    const { stdout } = await probe;
    const seen = JSON.parse(stdout) as { health: number[]; append: number[]; failures: string[] };
    const figures: AttackFigures = {
      attack,
      healthP99Ms: round(p99(seen.health)),
      appendP99Ms: round(p99(seen.append)),
      probeFailures: seen.failures.length,
      maxRssMiB: round(maxRss / 1024 / 1024),
      attackMs: round(attackMs),
      outcome,
    };
    process.stdout.write(`attack figures: ${JSON.stringify(figures)}\n`);
    if (process.env.SECURITY_FIGURES) appendFileSync(process.env.SECURITY_FIGURES, JSON.stringify(figures) + "\n");
    if (seen.failures.length > 0) process.stdout.write(`probe failures: ${seen.failures.slice(0, 5).join("; ")}\n`);
    return figures;
  } finally {
    clearInterval(sampler);
  }
}

function p99(values: number[]): number {
  if (values.length === 0) return Infinity;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

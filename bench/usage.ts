import { readdirSync, readFileSync } from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { readCpuSeconds } from "./server-process";
import { round } from "./stats";

const LOOP_DELAY_RESOLUTION_MS = 10;

/** Where the CPU went during a measurement: each figure in percent of one core. */
export interface Usage {
  server: number;
  /** This process: the benchmark's clients. */
  client: number;
  /** Every `postgres` process of the machine (its backends, WAL writer, ...). */
  postgres: number;
  /** The rest of the machine's busy time: other people's work on this shared machine. */
  others: number;
  /** How late this process's event loop ran its callbacks: p99, in ms. */
  clientLoopDelayP99Ms: number;
}

export interface UsageMeter {
  stop(): Usage;
}

/**
 * Starts counting CPU time from /proc for the server, this process, PostgreSQL and the whole
 * machine, and this event loop's delay. A client whose loop runs late stamps what it receives
 * late: that delay is part of any latency it measures.
 */
export function startUsage(serverPid: number): UsageMeter {
  const started = performance.now();
  const server = readCpuSeconds(serverPid);
  const client = process.cpuUsage();
  const postgres = postgresCpu();
  const machine = machineBusy();
  const delay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
  delay.enable();
  return {
    stop() {
      delay.disable();
      const wall = (performance.now() - started) / 1000;
      const pct = (seconds: number) => (100 * seconds) / wall;
      const clientUsed = process.cpuUsage(client);
      const postgresUsed = [...postgresCpu()].reduce((sum, [pid, s]) => sum + s - (postgres.get(pid) ?? 0), 0);
      const usage = {
        server: pct(readCpuSeconds(serverPid) - server),
        client: pct((clientUsed.user + clientUsed.system) / 1e6),
        postgres: pct(postgresUsed),
      };
      return {
        ...usage,
        others: Math.max(0, pct(machineBusy() - machine) - usage.server - usage.client - usage.postgres),
        // The histogram holds the intervals between its timer's runs: the delay is the excess.
        clientLoopDelayP99Ms: Math.max(0, delay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS),
      };
    },
  };
}

/** CPU seconds of every process named `postgres`, by pid. */
function postgresCpu(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!readFileSync(`/proc/${entry}/stat`, "utf8").includes("(postgres)")) continue;
    } catch {
      continue;
    }
    out.set(Number(entry), readCpuSeconds(Number(entry)));
  }
  return out;
}

/** Busy CPU seconds of the machine (all cores, everything but idle and iowait) since boot. */
function machineBusy(): number {
  const [, ...ticks] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/);
  const [user, nice, system, , , irq, softirq, steal] = ticks.map(Number);
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** The highest RSS of a process sampled every 100 ms from now until stop(), in MiB. */
export function trackPeakRss(rssMb: () => number): { stop(): number } {
  let peak = rssMb();
  const timer = setInterval(() => (peak = Math.max(peak, rssMb())), 100);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, rssMb());
    },
  };
}

/** startUsage(), `delayMs` from now: for a measurement that follows a warm-up. */
export function startUsageAfter(delayMs: number, serverPid: number): UsageMeter {
  let meter: UsageMeter | undefined;
  const timer = setTimeout(() => (meter = startUsage(serverPid)), delayMs);
  return {
    stop() {
      clearTimeout(timer);
      return (meter ?? startUsage(serverPid)).stop();
    },
  };
}

/** A Usage as fields of a result line. */
export function usageFields(u: Usage): Record<string, number> {
  return {
    server_cpu_pct: round(u.server, 0),
    client_cpu_pct: round(u.client, 0),
    postgres_cpu_pct: round(u.postgres, 0),
    others_cpu_pct: round(u.others, 0),
    client_loop_delay_p99_ms: round(u.clientLoopDelayP99Ms, 1),
  };
}

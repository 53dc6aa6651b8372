/** What a timed run measured: events done, the time they took, and each operation's latency. */
export interface Measurement {
  events: number;
  seconds: number;
  /** Milliseconds per operation, in completion order. */
  latencies: number[];
}

export interface Summary {
  eps: number;
  p50Ms: number;
  p99Ms: number;
  ops: number;
}

/** Nearest-rank percentile of milliseconds; NaN when nothing was measured. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

export function summarize(m: Measurement): Summary {
  return {
    eps: m.events / m.seconds,
    p50Ms: percentile(m.latencies, 50),
    p99Ms: percentile(m.latencies, 99),
    ops: m.latencies.length,
  };
}

export interface TimedRun {
  clients: number;
  /** Operations started in this first stretch are not measured: connections, JIT, caches. */
  warmupMs: number;
  durationMs: number;
  /** One operation of one client; answers how many events it wrote or read. */
  operation(client: number): Promise<number>;
}

/**
 * Runs `clients` loops of back-to-back operations for warm-up plus duration, and measures the
 * operations started after the warm-up: from the first one's start to the last one's end. Each
 * client makes at least one measured operation, however long operations take.
 */
export async function runTimed(run: TimedRun): Promise<Measurement> {
  const measureFrom = performance.now() + run.warmupMs;
  const stopAt = measureFrom + run.durationMs;
  const latencies: number[] = [];
  let events = 0;
  let firstStart = Number.POSITIVE_INFINITY;
  let lastEnd = 0;
  const loop = async (client: number) => {
    let measured = 0;
    for (let start = performance.now(); start < stopAt || measured === 0; start = performance.now()) {
      const n = await run.operation(client);
      const end = performance.now();
      if (start >= measureFrom) {
        measured++;
        latencies.push(end - start);
        events += n;
        firstStart = Math.min(firstStart, start);
        lastEnd = Math.max(lastEnd, end);
      }
    }
  };
  await Promise.all(Array.from({ length: run.clients }, (_, i) => loop(i)));
  return { events, seconds: (lastEnd - firstStart) / 1000, latencies };
}

/** Measurements of the same work, taken in turns, as one. */
export function combine(parts: Measurement[]): Measurement {
  return {
    events: parts.reduce((n, m) => n + m.events, 0),
    seconds: parts.reduce((n, m) => n + m.seconds, 0),
    latencies: parts.flatMap((m) => m.latencies),
  };
}

export function round(value: number, digits: number): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

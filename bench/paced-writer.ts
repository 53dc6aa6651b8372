import { setTimeout as sleep } from "node:timers/promises";
import { createEvents, type BenchEvent } from "./payload";

export interface PacedWriterOptions {
  /** One write every `tickMs`, of `eventsPerTick` events: the rate is their ratio. */
  tickMs: number;
  eventsPerTick: number;
  /** Writes before this are not measured (their events still count as delivered traffic). */
  warmupMs: number;
  durationMs: number;
  /** A tick that finds this many writes unanswered is skipped (and counted). */
  maxInFlight: number;
  write(tick: number, events: BenchEvent[]): Promise<void>;
}

/**
 * A writer at a steady rate, and what it wrote, by event: event k of tick t has the sequence
 * number `t * eventsPerTick + k`.
 */
export interface PacedWriter {
  /** Sequence numbers run from 0 to `end`; those from `firstMeasured` on are measured. */
  readonly end: number;
  readonly firstMeasured: number;
  /** The sequence number of each event id written so far. */
  readonly seqOf: Map<string, number>;
  /** performance.now() when the write of each event was answered; NaN if it was not (yet). */
  readonly ackAt: Float64Array;
  /** The measured stretch of time, known once run() started. */
  measureFrom: number;
  measureTo: number;
  skippedTicks: number;
  failedWrites: number;
  /** Writes for the warm-up and the duration; resolves when every write has been answered. */
  run(): Promise<void>;
}

/**
 * The schedule is fixed in advance (open loop): a tick does not wait for the previous write's
 * answer, so a slow answer does not lower the rate. A late timer fires the ticks it missed at
 * once.
 */
export function createPacedWriter(options: PacedWriterOptions): PacedWriter {
  const { tickMs, eventsPerTick } = options;
  const warmupTicks = Math.ceil(options.warmupMs / tickMs);
  const ticks = warmupTicks + Math.ceil(options.durationMs / tickMs);
  const writer: PacedWriter = {
    end: ticks * eventsPerTick,
    firstMeasured: warmupTicks * eventsPerTick,
    seqOf: new Map(),
    ackAt: new Float64Array(ticks * eventsPerTick).fill(Number.NaN),
    measureFrom: Number.NaN,
    measureTo: Number.NaN,
    skippedTicks: 0,
    failedWrites: 0,
    async run() {
      const inFlight = new Set<Promise<void>>();
      const start = performance.now();
      writer.measureFrom = start + warmupTicks * tickMs;
      writer.measureTo = start + ticks * tickMs;
      for (let tick = 0; tick < ticks; tick++) {
        const wait = start + tick * tickMs - performance.now();
        if (wait > 0) await sleep(wait);
        if (inFlight.size >= options.maxInFlight) {
          writer.skippedTicks++;
          continue;
        }
        const first = tick * eventsPerTick;
        const events = createEvents(eventsPerTick, first);
        events.forEach((e, k) => writer.seqOf.set(e.id, first + k));
        const write: Promise<void> = options.write(tick, events).then(
          () => {
            writer.ackAt.fill(performance.now(), first, first + eventsPerTick);
            inFlight.delete(write);
          },
          () => {
            writer.failedWrites++;
            inFlight.delete(write);
          },
        );
        inFlight.add(write);
      }
      await Promise.all(inFlight);
    },
  };
  return writer;
}

/** Receive times per subscriber and event, to set against the writer's answers. */
export interface Receipts {
  /** Records that subscriber `i` received event `id` now. */
  record(i: number, id: string): void;
  /** How many events subscriber `i` has received of those written. */
  count(i: number): number;
  readonly duplicates: number;
  readonly unknown: number;
  summarize(): LatencySummary;
}

export interface LatencySummary {
  /** Written and answered events of the measured stretch. */
  writtenEps: number;
  /** Receipts (of any event) within the measured stretch, per second, over all subscribers. */
  deliveredEps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  minMs: number;
  /** Measured events some subscriber never received. */
  missing: number;
}

export function createReceipts(writer: PacedWriter, subscribers: number): Receipts {
  const n = writer.end;
  const at = new Float64Array(subscribers * n).fill(Number.NaN);
  const counts = new Int32Array(subscribers);
  let duplicates = 0;
  let unknown = 0;
  return {
    record(i, id) {
      const now = performance.now();
      const seq = writer.seqOf.get(id);
      if (seq === undefined) unknown++;
      else if (!Number.isNaN(at[i * n + seq])) duplicates++;
      else {
        at[i * n + seq] = now;
        counts[i]++;
      }
    },
    count: (i) => counts[i],
    get duplicates() {
      return duplicates;
    },
    get unknown() {
      return unknown;
    },
    summarize() {
      const { measureFrom, measureTo, ackAt, firstMeasured } = writer;
      const latencies = new Float64Array(subscribers * (n - firstMeasured));
      let measured = 0;
      let missing = 0;
      let delivered = 0;
      for (let i = 0; i < subscribers; i++) {
        for (let seq = 0; seq < n; seq++) {
          const received = at[i * n + seq];
          if (received >= measureFrom && received < measureTo) delivered++;
          if (seq < firstMeasured || Number.isNaN(ackAt[seq])) continue;
          if (Number.isNaN(received)) missing++;
          else latencies[measured++] = received - ackAt[seq];
        }
      }
      let written = 0;
      for (let seq = firstMeasured; seq < n; seq++) if (!Number.isNaN(ackAt[seq])) written++;
      const sorted = latencies.subarray(0, measured).sort();
      const percentile = (p: number) => (measured === 0 ? Number.NaN : sorted[Math.min(measured, Math.max(1, Math.ceil((p / 100) * measured))) - 1]);
      const seconds = (measureTo - measureFrom) / 1000;
      return {
        writtenEps: written / seconds,
        deliveredEps: delivered / seconds,
        p50Ms: percentile(50),
        p99Ms: percentile(99),
        maxMs: percentile(100),
        minMs: sorted[0] ?? Number.NaN,
        missing,
      };
    },
  };
}

import { EventStoreError, type StreamAppend } from "../../domain";
import type { Metrics } from "../../metrics";
import type { AppendResult } from "../event-store";
import type { AppendOutcome } from "./append";
import { toEventStoreError, type ErrorContext } from "./database-error";

export interface AppendBatcherOptions {
  /** Runs one batch in one transaction (appendBatch); throws when the whole statement failed. */
  run(batch: StreamAppend[][]): Promise<AppendOutcome[]>;
  /** A batch holds at most this many events and bytes, unless one append alone is larger. */
  maxEvents: number;
  maxBytes: number;
  /** Called after each batch that wrote, with the last position it took. */
  onCommit(lastPosition: bigint): void;
  /** For the errors of a failed batch (the statement timeout they name). */
  errorContext?: ErrorContext;
  metrics?: Metrics["appends"];
}

/** The outcome of an append whose caller went away before it was sent again. */
class Aborted {
  constructor(readonly reason: unknown) {}
}

interface Waiting {
  appends: StreamAppend[];
  events: number;
  bytes: number;
  /** The caller's: while the append waits, an abort takes it out, answered with the reason. */
  signal?: AbortSignal;
  /** Takes the append out of the queue when its signal aborts. */
  leave(): void;
  resolve(results: AppendResult[]): void;
  reject(error: unknown): void;
}

/**
 * Gathers the appends that arrive while a batch is being written into the next batch, so that
 * many callers share one transaction, one commit, one log lock and one NOTIFY. Nothing waits
 * for a batch to fill: an append that finds no batch in flight goes at once, alone; only those
 * that arrive during a write wait for it, and then go together.
 *
 * A batch's appends keep their own outcomes: the one that fails a check gets its error and its
 * neighbours their results. If the batch's statement fails as a whole (a race with another
 * server on an event id, or anything unexpected), nothing of it was written, and each append is
 * tried again alone, so that one bad append never fails its neighbours. When the database is
 * unreachable, or the statement ran past the statement timeout, every append of the batch gets
 * that error: retrying alone could not do better, and would take as long again for each.
 *
 * An append whose caller has gone (its signal aborted: a cancel, a deadline, a shutdown) while
 * it waits is not sent: it leaves the queue at once and is answered with the signal's reason.
 * Once sent it is not withdrawn: its answer is the database's.
 */
export function createAppendBatcher(options: AppendBatcherOptions) {
  const waiting: Waiting[] = [];
  let writing = false;

  function take(): Waiting[] {
    const batch = [waiting.shift()!];
    let events = batch[0].events;
    let bytes = batch[0].bytes;
    while (waiting.length > 0) {
      const next = waiting[0];
      if (events + next.events > options.maxEvents || bytes + next.bytes > options.maxBytes) break;
      batch.push(waiting.shift()!);
      events += next.events;
      bytes += next.bytes;
    }
    return batch;
  }

  async function write(): Promise<void> {
    writing = true;
    try {
      while (waiting.length > 0) {
        const batch = take();
        for (const w of batch) w.signal?.removeEventListener("abort", w.leave);
        // settle answers every append; should it throw all the same, none is left waiting.
        await settle(batch).catch((e) => batch.forEach((w) => w.reject(toEventStoreError(e, options.errorContext))));
      }
    } finally {
      writing = false;
    }
  }

  async function settle(batch: Waiting[]): Promise<void> {
    let outcomes: (AppendOutcome | Aborted)[];
    // Retried alone, a batch is as many transactions as appends: each counts as a batch of one.
    let oneTransaction = true;
    try {
      outcomes = await options.run(batch.map((w) => w.appends));
    } catch (e) {
      const error = toEventStoreError(e, options.errorContext);
      if (batch.length === 1 || error.kind === "UNAVAILABLE" || error.kind === "STATEMENT_TIMEOUT") {
        for (const w of batch) w.reject(error);
        return;
      }
      // Nothing of the batch was written: each goes again alone, unless its caller has gone.
      oneTransaction = false;
      outcomes = [];
      for (const w of batch) outcomes.push(w.signal?.aborted ? new Aborted(w.signal.reason) : await alone(w));
    }
    let last = 0n;
    let committed = 0;
    let events = 0;
    let bytes = 0;
    batch.forEach((w, i) => {
      const outcome = outcomes[i];
      if (outcome instanceof EventStoreError) {
        if (outcome.kind === "WRONG_EXPECTED_REVISION") options.metrics?.conflicts.inc();
        return w.reject(outcome);
      }
      if (outcome instanceof Aborted) return w.reject(outcome.reason);
      for (const r of outcome) if (!r.replayed && r.positions.at(-1)! > last) last = r.positions.at(-1)!;
      if (!outcome.every((r) => r.replayed)) {
        committed++;
        events += w.events;
        bytes += w.bytes;
      }
      w.resolve(outcome);
    });
    if (options.metrics && committed > 0) {
      const m = options.metrics;
      m.committed.inc(committed);
      m.events.inc(events);
      m.bytes.inc(bytes);
      if (oneTransaction) {
        m.batchAppends.observe(committed);
        m.batchEvents.observe(events);
      } else {
        batch.forEach((w, i) => {
          const outcome = outcomes[i];
          if (Array.isArray(outcome) && !outcome.every((r) => r.replayed)) {
            m.batchAppends.observe(1);
            m.batchEvents.observe(w.events);
          }
        });
      }
    }
    if (last > 0n) options.onCommit(last);
  }

  async function alone(w: Waiting): Promise<AppendOutcome> {
    try {
      return (await options.run([w.appends]))[0];
    } catch (e) {
      return toEventStoreError(e, options.errorContext);
    }
  }

  return {
    /**
     * Appends one caller's streams (all or nothing) as part of the next batch; rejects with the
     * signal's reason, having sent nothing, if it aborts before the append is sent.
     */
    append(appends: StreamAppend[], signal?: AbortSignal): Promise<AppendResult[]> {
      if (signal?.aborted) return Promise.reject(signal.reason);
      let events = 0;
      let bytes = 0;
      for (const a of appends) {
        events += a.events.length;
        for (const e of a.events) bytes += e.data.byteLength;
      }
      return new Promise<AppendResult[]>((resolve, reject) => {
        const w: Waiting = {
          appends,
          events,
          bytes,
          signal,
          leave: () => {
            const at = waiting.indexOf(w);
            if (at >= 0) waiting.splice(at, 1);
            reject(signal!.reason);
          },
          resolve,
          reject,
        };
        waiting.push(w);
        // With no batch in flight, it is taken (sent) at once: only one that waits listens.
        if (writing) signal?.addEventListener("abort", w.leave, { once: true });
        else void write();
      });
    },
  };
}

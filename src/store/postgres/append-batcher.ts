import { EventStoreError, type StreamAppend } from "../../domain";
import type { AppendResult } from "../event-store";
import type { AppendOutcome } from "./append";
import { toEventStoreError } from "./database-error";

export interface AppendBatcherOptions {
  /** Runs one batch in one transaction (appendBatch); throws when the whole statement failed. */
  run(batch: StreamAppend[][]): Promise<AppendOutcome[]>;
  /** A batch holds at most this many events and bytes, unless one append alone is larger. */
  maxEvents: number;
  maxBytes: number;
  /** Called after each batch that wrote, with the last position it took. */
  onCommit(lastPosition: bigint): void;
}

interface Waiting {
  appends: StreamAppend[];
  events: number;
  bytes: number;
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
 * unreachable, every append of the batch gets that error: retrying alone could not do better.
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
        // settle answers every append; should it throw all the same, none is left waiting.
        await settle(batch).catch((e) => batch.forEach((w) => w.reject(toEventStoreError(e))));
      }
    } finally {
      writing = false;
    }
  }

  async function settle(batch: Waiting[]): Promise<void> {
    let outcomes: AppendOutcome[];
    try {
      outcomes = await options.run(batch.map((w) => w.appends));
    } catch (e) {
      const error = toEventStoreError(e);
      if (batch.length === 1 || error.kind === "UNAVAILABLE") {
        for (const w of batch) w.reject(error);
        return;
      }
      outcomes = [];
      for (const w of batch) outcomes.push(await alone(w));
    }
    let last = 0n;
    batch.forEach((w, i) => {
      const outcome = outcomes[i];
      if (outcome instanceof EventStoreError) return w.reject(outcome);
      for (const r of outcome) if (!r.replayed && r.positions.at(-1)! > last) last = r.positions.at(-1)!;
      w.resolve(outcome);
    });
    if (last > 0n) options.onCommit(last);
  }

  async function alone(w: Waiting): Promise<AppendOutcome> {
    try {
      return (await options.run([w.appends]))[0];
    } catch (e) {
      return toEventStoreError(e);
    }
  }

  return {
    /** Appends one caller's streams (all or nothing) as part of the next batch. */
    append(appends: StreamAppend[]): Promise<AppendResult[]> {
      let events = 0;
      let bytes = 0;
      for (const a of appends) {
        events += a.events.length;
        for (const e of a.events) bytes += e.data.byteLength;
      }
      return new Promise<AppendResult[]>((resolve, reject) => {
        waiting.push({ appends, events, bytes, resolve, reject });
        if (!writing) void write();
      });
    },
  };
}

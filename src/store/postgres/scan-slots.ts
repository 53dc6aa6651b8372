/**
 * How many filtered log scans run in the database at once, all callers together; the rest wait
 * their turn here, a statement at a time, the readers taking turns: first come first served
 * among one reader's scans, and one reader after another.
 *
 * A scan is a statement whose work is not bounded by what it returns: a filter that passes few
 * events reads a window of the log for each page (scan-window.ts), and a filter of regular
 * expressions has pages matched in this process, the matching done within the slot.
 * Each statement is bounded, but eleven readers with the costliest legal filter kept both cores
 * of this machine busy in PostgreSQL, and another client's one-event append waited 363 ms (p99)
 * for a core. Reads whose work is what they return (a stream, the unfiltered log, the live
 * feed's one read per commit) are paced by their readers and are not counted here. Slots are
 * taken per statement, not per read, so that a long scan does not hold one while its reader
 * waits: readers take turns.
 *
 * Turns go by reader (a principal's name): one line for all would let a client that keeps many
 * scans queued delay every other client's scans, and their subscriptions' catch-up, behind its
 * own, where before they shared PostgreSQL's CPU.
 *
 * Hand-written: p-queue, which can withdraw a waiting task when its caller goes, is ES modules
 * only, and p-limit can do neither that nor turns.
 */
export interface ScanSlots {
  /** Runs `scan` when a slot is free and it is `reader`'s turn; rejects with the signal's reason if it aborts first. */
  run<T>(scan: () => Promise<T>, signal?: AbortSignal, reader?: string): Promise<T>;
  /** Scans waiting for a slot now (for tests and diagnostics). */
  readonly waiting: number;
}

export const DEFAULT_MAX_CONCURRENT_SCANS = 2;

export function createScanSlots(max: number): ScanSlots {
  let running = 0;
  let waiting = 0;
  /** Each reader's scans waiting, in the order the readers' turns come. */
  const lines = new Map<string, (() => void)[]>();
  const release = () => {
    const next = lines.entries().next();
    if (next.done) {
      running--;
      return;
    }
    const [reader, line] = next.value;
    const turn = line.shift()!;
    // The reader goes to the back, behind the others that wait.
    lines.delete(reader);
    if (line.length > 0) lines.set(reader, line);
    waiting--;
    // The slot passes straight to it: `running` stays as it is.
    turn();
  };
  return {
    get waiting() {
      return waiting;
    },
    async run(scan, signal, reader = "") {
      if (signal?.aborted) throw signal.reason;
      if (running < max) running++;
      else {
        await new Promise<void>((resolve, reject) => {
          let line = lines.get(reader);
          if (!line) lines.set(reader, (line = []));
          const onAbort = () => {
            line!.splice(line!.indexOf(turn), 1);
            if (line!.length === 0 && lines.get(reader) === line) lines.delete(reader);
            waiting--;
            reject(signal!.reason);
          };
          const turn = () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          };
          line.push(turn);
          waiting++;
          signal?.addEventListener("abort", onAbort, { once: true });
        });
      }
      try {
        return await scan();
      } finally {
        release();
      }
    },
  };
}

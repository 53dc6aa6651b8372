/**
 * How many filtered log scans run in the database at once, all callers together; the rest wait
 * their turn here, first come first served, a statement at a time.
 *
 * A scan is a statement whose work is not bounded by what it returns: a filter that passes few
 * events reads a window of the log for each page (scan-window.ts), and a filter of regular
 * expressions has pages matched in this process, the matching done within the slot. Each statement is bounded,
 * but eleven readers with the costliest legal filter kept both cores of this machine busy in
 * PostgreSQL, and another client's one-event append waited 363 ms (p99) for a core. Reads whose
 * work is what they return (a stream, the unfiltered log, the live feed's one read per commit)
 * are paced by their readers and are not counted here. Slots are taken per statement, not per
 * read, so that a long scan does not hold one while its reader waits: readers take turns.
 *
 * Hand-written: p-queue, which can withdraw a waiting task when its caller goes, is ES modules
 * only, and p-limit cannot.
 */
export interface ScanSlots {
  /** Runs `scan` when a slot is free; rejects with the signal's reason if it aborts first. */
  run<T>(scan: () => Promise<T>, signal?: AbortSignal): Promise<T>;
  /** Scans waiting for a slot now (for tests and diagnostics). */
  readonly waiting: number;
}

export const DEFAULT_MAX_CONCURRENT_SCANS = 2;

export function createScanSlots(max: number): ScanSlots {
  let running = 0;
  const queue: (() => void)[] = [];
  const release = () => {
    const next = queue.shift();
    if (next) next();
    else running--;
  };
  return {
    get waiting() {
      return queue.length;
    },
    async run(scan, signal) {
      if (signal?.aborted) throw signal.reason;
      if (running < max) running++;
      else {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => {
            queue.splice(queue.indexOf(turn), 1);
            reject(signal!.reason);
          };
          // The slot passes straight to the next in line: `running` stays as it is.
          const turn = () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          };
          queue.push(turn);
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

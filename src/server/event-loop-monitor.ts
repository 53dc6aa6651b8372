export interface EventLoopMonitorOptions {
  /** The loop is lagging once a timer fires this much later than it was due. */
  maxLagMs: number;
  /** Told when the loop starts lagging, and when it has kept time again for `maxLagMs`. */
  onChange(lagging: boolean, lagMs: number): void;
}

export interface EventLoopMonitor {
  readonly lagging: boolean;
  stop(): void;
}

/** The sampler's interval: a quarter of the threshold, so a lag is seen within a quarter of it. */
const MAX_SAMPLE_MS = 250;
const MIN_SAMPLE_MS = 10;

/**
 * Watches how late a timer fires: when the event loop is blocked or swamped, every request waits
 * as long as this timer does, so its lateness is what a health check should report.
 *
 * A timer rather than `monitorEventLoopDelay`: the histogram is read from a timer anyway, and a
 * timer that fires late runs in the timers phase, before the I/O callbacks that queued behind the
 * same stall; so a health check held up by a stall longer than the sampling interval is answered
 * NOT_SERVING, not the stale SERVING of before it.
 *
 * Once lagging, the loop must keep time for `maxLagMs` before it counts as recovered, so that a
 * loop stalled in bursts with short gaps does not flap between the two answers.
 */
export function monitorEventLoop(options: EventLoopMonitorOptions): EventLoopMonitor {
  const sampleMs = Math.max(MIN_SAMPLE_MS, Math.min(MAX_SAMPLE_MS, Math.floor(options.maxLagMs / 4)));
  let lagging = false;
  let onTimeSince = 0;
  let due = performance.now() + sampleMs;
  let timer: NodeJS.Timeout;
  const tick = () => {
    const now = performance.now();
    const lagMs = now - due;
    if (lagMs > options.maxLagMs) {
      onTimeSince = now;
      if (!lagging) {
        lagging = true;
        options.onChange(true, lagMs);
      }
    } else if (lagging && now - onTimeSince >= options.maxLagMs) {
      lagging = false;
      options.onChange(false, lagMs);
    }
    due = now + sampleMs;
    timer = setTimeout(tick, sampleMs).unref();
  };
  timer = setTimeout(tick, sampleMs).unref();
  return {
    get lagging() {
      return lagging;
    },
    stop: () => clearTimeout(timer),
  };
}

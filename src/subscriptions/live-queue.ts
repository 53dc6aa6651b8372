import { recordedEventBytes, type RecordedEvent } from "../domain";
import type { LiveSubscriber } from "./live-feed";

export interface QueueLimits {
  /** Most events a live subscriber may have waiting. */
  maxEvents: number;
  /** Most bytes of events (every field: eventBytes) a live subscriber may have waiting. */
  maxBytes: number;
}

export type LiveItem =
  | { kind: "events"; events: RecordedEvent[]; reached: bigint }
  | { kind: "idle" }
  | { kind: "overflow" };

/**
 * A live subscriber's bounded buffer. The feed pushes; the subscription pulls as fast as its
 * consumer reads. When the buffer would pass its limits it is dropped and marked overflowed:
 * the subscription then reads from storage at its own pace, so memory never grows with a slow
 * consumer and no event is lost.
 */
export class LiveQueue implements LiveSubscriber {
  private items: { events: RecordedEvent[]; reached: bigint }[] = [];
  private count = 0;
  private bytes = 0;
  private overflowed = false;
  private error: unknown;
  private wakeUp: (() => void) | undefined;

  constructor(
    /** Events at or below this position were already delivered from storage. */
    private floor: bigint,
    private readonly selects: (event: RecordedEvent) => boolean,
    private readonly limits: QueueLimits,
    private readonly onOverflow: (queue: LiveQueue) => void,
  ) {}

  deliver(events: RecordedEvent[], reached: bigint): void {
    if (this.overflowed || this.error !== undefined) return;
    const selected = events.filter((e) => e.position > this.floor && this.selects(e));
    if (reached > this.floor) this.floor = reached;
    const last = this.items[this.items.length - 1];
    if (selected.length === 0 && last) {
      last.reached = reached;
    } else {
      this.items.push({ events: selected, reached });
      this.count += selected.length;
      // Every field: metadata, not only data, is what a subscriber that stopped reading holds.
      for (const e of selected) this.bytes += recordedEventBytes(e);
    }
    if (this.count > this.limits.maxEvents || this.bytes > this.limits.maxBytes) {
      this.overflowed = true;
      this.items = [];
      this.count = 0;
      this.bytes = 0;
      this.onOverflow(this);
    }
    this.wakeUp?.();
  }

  fail(error: unknown): void {
    this.error = error ?? new Error("live delivery failed");
    this.wakeUp?.();
  }

  /** Every batch waiting, merged; "idle" after `idleMs` without one, or "overflow"; throws if the feed failed. */
  async next(idleMs: number, signal: AbortSignal): Promise<LiveItem> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      if (this.overflowed) return { kind: "overflow" };
      if (this.items.length > 0) {
        // Everything waiting, at once: a consumer that fell a little behind catches up in one
        // message rather than one per wake-up.
        const items = this.items;
        this.items = [];
        this.count = 0;
        this.bytes = 0;
        const events = items.length === 1 ? items[0].events : items.flatMap((i) => i.events);
        return { kind: "events", events, reached: items[items.length - 1].reached };
      }
      if (signal.aborted) return { kind: "idle" };
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => done(false), idleMs);
        const onAbort = () => done(true);
        signal.addEventListener("abort", onAbort, { once: true });
        const done = (wokenUp: boolean) => {
          clearTimeout(timer);
          signal.removeEventListener("abort", onAbort);
          this.wakeUp = undefined;
          resolve(wokenUp);
        };
        this.wakeUp = () => done(true);
      });
      if (!woken) return { kind: "idle" };
    }
  }
}

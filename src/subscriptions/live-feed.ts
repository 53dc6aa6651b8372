import { EMPTY_FILTER, type Logger, type RecordedEvent } from "../domain";
import { createMetrics, type Metrics, type WakeCause } from "../metrics";
import type { EventStore } from "../store";

/** A live subscriber as the feed sees it. */
export interface LiveSubscriber {
  /** New events in log order (all of them, unfiltered), and the position the log was read up to. */
  deliver(events: RecordedEvent[], reached: bigint): void;
  /** The feed cannot read the log: live delivery has stopped for this subscriber. */
  fail(error: unknown): void;
}

export interface LiveFeedOptions {
  store: EventStore;
  log: Logger;
  /** A slow poll that covers notifications lost for any reason. */
  pollIntervalMs: number;
  /**
   * Rows per read. The store also cuts each read at its page bytes (about 4 MiB by default):
   * one read holds no more than that whatever the events' size.
   */
  pageSize: number;
  /** Counts the wake-ups by cause. */
  metrics?: Metrics;
}

export interface LiveFeed {
  /** The position up to which every subscriber has been given the log. */
  readonly head: bigint;
  readonly subscriberCount: number;
  /**
   * Adds a subscriber that has read the log up to `position` from storage. Refused (false) when
   * the feed has already handed out events after `position`: the subscriber must read those
   * from storage first. Synchronous, so no fan-out can slip between the check and the add.
   */
  attach(subscriber: LiveSubscriber, position: bigint): boolean;
  detach(subscriber: LiveSubscriber): void;
  /** Reads the log now (coalesced with a read in progress). */
  wake(cause: WakeCause): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One reader of the log per server process: on every wake-up (a commit here, a NOTIFY from any
 * server, a reconnect of the notification channel, the slow poll) it reads the new events once
 * and hands them to every live subscriber, which filter them in memory.
 */
export function createLiveFeed(options: LiveFeedOptions): LiveFeed {
  const { store, log } = options;
  const subscribers = new Set<LiveSubscriber>();
  let head = 0n;
  let wanted = false;
  let reading: Promise<void> | undefined;
  let poll: NodeJS.Timeout | undefined;
  let unwatch: (() => Promise<void>) | undefined;
  let stopped = false;
  const wakeups = options.metrics?.feed.wakeups ?? createMetrics().feed.wakeups;
  const counter = (cause: WakeCause) => {
    const c = wakeups.labels({ cause });
    c.inc(0); // shown from the start, at 0
    return c;
  };
  const counters = { notify: counter("notify"), local: counter("local"), poll: counter("poll"), reconnect: counter("reconnect") };

  async function readLog(): Promise<void> {
    while (wanted && !stopped) {
      wanted = false;
      try {
        if (subscribers.size === 0) {
          // Nobody to hand events to: only keep the head fresh (a poll also covers commits
          // whose notification was lost). Checked again after the await: a subscriber that
          // attached meanwhile must be given everything after the old head.
          const latest = await store.head();
          if (subscribers.size === 0 && latest > head) head = latest;
          if (subscribers.size === 0) continue;
        }
        for (;;) {
          const page = await store.readAfter({ filter: EMPTY_FILTER }, head, options.pageSize);
          if (page.reached > head || page.events.length > 0) {
            head = page.reached;
            for (const s of [...subscribers]) s.deliver(page.events, page.reached);
          }
          if (page.end) break;
        }
      } catch (e) {
        // Subscribers are told rather than left waiting: they end with UNAVAILABLE and resume
        // from their last position, here or on another server. The feed tries again on the next
        // wake-up or poll.
        log.warn("live feed cannot read the log", { cause: e instanceof Error ? e.message : String(e) });
        for (const s of [...subscribers]) {
          subscribers.delete(s);
          s.fail(e);
        }
      }
    }
  }

  function wake(cause: WakeCause) {
    counters[cause].inc();
    read();
  }

  function read() {
    wanted = true;
    reading ??= readLog().finally(() => {
      reading = undefined;
      if (wanted && !stopped) read();
    });
  }

  return {
    get head() {
      return head;
    },
    get subscriberCount() {
      return subscribers.size;
    },
    attach(subscriber, position) {
      if (head > position) return false;
      subscribers.add(subscriber);
      return true;
    },
    detach(subscriber) {
      subscribers.delete(subscriber);
    },
    wake,
    async start() {
      head = await store.head();
      unwatch = await store.watch({
        onCommit: (position, source) => {
          if (position <= head) return;
          // With nobody to hand events to, the feed need not read them: every position up to
          // a committed one is committed, so it can take that as its head. A subscriber behind
          // it is refused by attach() and reads the difference from storage.
          if (subscribers.size === 0 && !reading) head = position;
          else wake(source);
        },
        onConnected: () => wake("reconnect"),
      });
      poll = setInterval(() => wake("poll"), options.pollIntervalMs);
      poll.unref();
    },
    async stop() {
      stopped = true;
      if (poll) clearInterval(poll);
      await unwatch?.();
      await reading;
      subscribers.clear();
    },
  };
}

import { randomUUID } from "node:crypto";
import { EventStoreError, invalidArgument, matchesFilter, recordedEventBytes, type RecordedEvent } from "../domain";
import type { CatchUpPage, EventStore, Selection } from "../store";
import type { LiveFeed } from "./live-feed";
import { LiveQueue, type QueueLimits } from "./live-queue";

export type StartFrom =
  | { kind: "start" }
  | { kind: "end" }
  | { kind: "after_position"; position: bigint }
  | { kind: "after_revision"; revision: bigint };

export interface SubscriptionRequest {
  selection: Selection;
  start: StartFrom;
  /** A durable subscription: start after its committed checkpoint, if it has one. */
  name?: string;
  heartbeatMs: number;
}

export type SubscriptionMessage =
  | { kind: "confirmation"; id: string; after: bigint }
  /** Consecutive matching events, in log order; `live` ones are the same objects for every live subscriber. */
  | { kind: "events"; events: RecordedEvent[]; live: boolean }
  | { kind: "caught_up"; position: bigint }
  | { kind: "fell_behind"; position: bigint }
  | { kind: "checkpoint"; position: bigint }
  | { kind: "heartbeat"; time: Date };

export interface SubscriptionSettings {
  store: EventStore;
  feed: LiveFeed;
  queue: QueueLimits;
  /** Rows per catch-up page. */
  pageSize: number;
  /** Least time between two checkpoints when the position moves without events to send. */
  checkpointIntervalMs: number;
}

/**
 * One subscription, as a pull-based stream of messages: confirmation, history from storage,
 * caught-up, then live batches from the feed. Falling behind (a full live buffer) goes back to
 * storage from the last position sent and rejoins later. It runs until `signal` aborts or the
 * store fails (the error is thrown: the consumer resumes from its last position).
 */
export async function* subscribe(
  settings: SubscriptionSettings,
  request: SubscriptionRequest,
  signal: AbortSignal,
): AsyncGenerator<SubscriptionMessage> {
  const { store, feed } = settings;
  const selection = { ...request.selection };
  let position = await startPosition(store, feed, request, selection);
  yield { kind: "confirmation", id: randomUUID(), after: position };

  const selects = (e: RecordedEvent) =>
    (selection.stream === undefined || e.stream === selection.stream) &&
    (selection.afterRevision === undefined || e.revision > selection.afterRevision) &&
    matchesFilter(selection.filter, e);
  const now = () => Date.now();
  // `reported`: the last position the consumer was told (event, checkpoint or caught-up).
  let reported = position;
  let lastSent = now();
  let lastReport = now();
  const heartbeatDue = () => request.heartbeatMs - (now() - lastSent);
  const checkpointDue = () =>
    position > reported ? settings.checkpointIntervalMs - (now() - lastReport) : Number.POSITIVE_INFINITY;

  while (!signal.aborted) {
    // History, from storage, at the consumer's pace, one page read ahead: the next page comes
    // from PostgreSQL while this one goes out.
    let rows = Math.min(FIRST_PAGE_ROWS, settings.pageSize);
    let reading = readAhead(store, selection, position, rows, signal);
    for (;;) {
      let page: CatchUpPage;
      try {
        page = await reading;
      } catch (e) {
        // The call has ended: its read was stopped, in the database too.
        if (signal.aborted) return;
        throw e;
      }
      rows = nextPageRows(page.events, settings.pageSize);
      if (!page.end) reading = readAhead(store, selection, page.reached, rows, signal);
      if (page.events.length > 0) {
        yield { kind: "events", events: page.events, live: false };
        reported = position = page.events[page.events.length - 1].position;
        lastSent = lastReport = now();
        if (signal.aborted) return;
      }
      position = page.reached;
      if (page.end) break;
      if (checkpointDue() <= 0) {
        yield { kind: "checkpoint", position };
        reported = position;
        lastSent = lastReport = now();
      }
    }

    const queue = new LiveQueue(position, selects, settings.queue, (q) => feed.detach(q));
    if (!feed.attach(queue, position)) continue; // the feed is ahead: more history first
    // A consumer that hangs up while a write to it is blocked leaves this generator suspended
    // at a yield that may never return: leave the feed as soon as the call ends, not later.
    const leave = () => feed.detach(queue);
    signal.addEventListener("abort", leave, { once: true });
    try {
      yield { kind: "caught_up", position };
      reported = position;
      lastSent = lastReport = now();
      for (;;) {
        const wait = Math.max(1, Math.min(heartbeatDue(), checkpointDue()));
        const item = await queue.next(wait, signal);
        if (signal.aborted) return;
        if (item.kind === "overflow") {
          yield { kind: "fell_behind", position };
          break;
        }
        if (item.kind === "events") {
          if (item.events.length > 0) {
            yield { kind: "events", events: item.events, live: true };
            reported = position = item.events[item.events.length - 1].position;
            lastSent = lastReport = now();
          }
          if (item.reached > position) position = item.reached;
        }
        if (checkpointDue() <= 0) {
          yield { kind: "checkpoint", position };
          reported = position;
          lastSent = lastReport = now();
        } else if (heartbeatDue() <= 0) {
          yield { kind: "heartbeat", time: new Date() };
          lastSent = now();
        }
      }
    } finally {
      signal.removeEventListener("abort", leave);
      feed.detach(queue);
    }
  }
}

/**
 * Catch-up pages hold about PAGE_BYTES of events (every field counted: eventBytes), whatever
 * their size (up to `pageSize` rows), so that a subscriber holds at most two pages (one read
 * ahead) of a few MiB, even in a log of 1 MiB events, of data or of metadata. The first page is
 * small; the next ones follow what it held.
 */
const PAGE_BYTES = 4 * 1024 * 1024;
const FIRST_PAGE_ROWS = 16;

function nextPageRows(events: RecordedEvent[], pageSize: number): number {
  if (events.length === 0) return pageSize;
  let bytes = 0;
  for (const e of events) bytes += recordedEventBytes(e) + 256;
  return Math.max(1, Math.min(pageSize, Math.floor(PAGE_BYTES / (bytes / events.length))));
}

function readAhead(store: EventStore, selection: Selection, after: bigint, pageSize: number, signal: AbortSignal) {
  const page = store.readAfter(selection, after, pageSize, signal);
  page.catch(() => {}); // read ahead for a subscription that then ended: nobody waits for it
  return page;
}

/**
 * The log's head if `position` is past it, else undefined. The feed's head is a committed
 * position, so a position at or below it is asked nothing more: the store is read only for one
 * past it (one more query, on resuming after a database restart, is one more to fail).
 */
async function headBelow(store: EventStore, feed: LiveFeed, position: bigint): Promise<bigint | undefined> {
  if (position <= feed.head) return undefined;
  const head = await store.head();
  return position > head ? head : undefined;
}

async function startPosition(store: EventStore, feed: LiveFeed, request: SubscriptionRequest, selection: Selection): Promise<bigint> {
  if (request.name !== undefined) {
    const checkpoint = await store.getCheckpoint(request.name);
    if (checkpoint) {
      // Only a database restored to an earlier point has a checkpoint past its head: resumed
      // from it, the subscription would pass over the events that take those positions again.
      const head = await headBelow(store, feed, checkpoint.position);
      if (head !== undefined) {
        throw new EventStoreError(
          "CHECKPOINT_PAST_HEAD",
          `The checkpoint of ${request.name} (${checkpoint.position}) is past the log's head (${head}), as after a restore: commit a position at or below the head to resume`,
          { subscription_name: request.name, position: String(checkpoint.position), head: String(head) },
        );
      }
      return checkpoint.position;
    }
  }
  const start = request.start;
  switch (start.kind) {
    case "start":
      return 0n;
    case "end":
      return store.head();
    case "after_position": {
      // Every position a consumer can have seen is at or below the head. One past it (Go's
      // math.MaxUint64 meant as "the end", say) would have the subscription pass over the events
      // up to it without a word as they come: refused, before the confirmation.
      const head = await headBelow(store, feed, start.position);
      if (head !== undefined) {
        throw invalidArgument("after_position", `${start.position} is past the log's head (${head}): START_POINT_END follows the events from now on`, { head: String(head) });
      }
      return start.position;
    }
    case "after_revision": {
      // Later revisions of the stream lie after this event's position; if the revision is not
      // written yet, the revision condition alone keeps the earlier ones out.
      selection.afterRevision = start.revision;
      return (await store.positionOf(selection.stream!, start.revision)) ?? 0n;
    }
  }
}

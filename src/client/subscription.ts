import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { StartPoint, type SubscribeRequestSchema, type SubscribeResponse } from "../../gen/eventstore/v1/eventstore_pb";
import { toClientError, type EventStoreClientError } from "./errors";
import { fromProtoEvent, type RecordedEvent } from "./events";
import { toProtoFilter, type EventFilter } from "./filter";

/** Where a subscription starts: the log's start, its end (only new events), or after a position. */
export type SubscribeFrom = "start" | "end" | { afterPosition: bigint };

export interface SubscribeOptions {
  /** One stream (it may not exist yet); unset: the whole log. */
  stream?: string;
  filter?: EventFilter;
  from?: SubscribeFrom;
  /**
   * A durable subscription: the first call starts right after the position last committed under
   * this name (commitCheckpoint), if any, else at `from`. Reconnects resume after the last event
   * received, not at the committed position, so nothing is delivered twice in one run.
   */
  name?: string;
  /** Link events come as the events they point to (with `link` set). */
  resolveLinks?: boolean;
  /** Aborting ends the subscription: the iteration then simply stops. */
  signal?: AbortSignal;
  /** Called each time the history is delivered and what follows is live (after every reconnect too). */
  onCaughtUp?(position: bigint): void;
  /** Called before each reconnect, with the error that ended the call. */
  onReconnect?(error: EventStoreClientError, attempt: number): void;
}

export interface ReconnectPolicy {
  /** The first wait before subscribing again; doubled after each failure in a row. */
  initialDelayMs: number;
  maxDelayMs: number;
}

export type OpenSubscription = (request: MessageInitShape<typeof SubscribeRequestSchema>, signal: AbortSignal) => AsyncIterable<SubscribeResponse>;

// The call was cut (server restart, network, overload): subscribing again can succeed. A refused
// request (invalid argument, ...) would be refused again.
const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.Internal, Code.DeadlineExceeded, Code.Canceled, Code.ResourceExhausted]);

/**
 * A subscription's events as an async iterable that outlives its calls: when a call fails in a
 * way that may pass, it subscribes again, after a back-off, right after the last event it
 * received (or the last position the server reported, from a checkpoint or caught-up), so the
 * consumer gets every event once, in order, across server restarts and network failures. The
 * consumer's pace is the call's pace: an event is only taken from the server when the consumer
 * asks for the next one.
 */
export async function* resumingSubscription(
  open: OpenSubscription,
  options: SubscribeOptions,
  policy: ReconnectPolicy,
): AsyncGenerator<RecordedEvent> {
  const controller = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, controller.signal]) : controller.signal;
  let after = typeof options.from === "object" ? options.from.afterPosition : undefined;
  // Until the server has confirmed a call, the request is the first one: the name (a durable
  // subscription's committed checkpoint wins) and the start asked for.
  let confirmed = false;
  let failures = 0;
  const filter = toProtoFilter(options.filter);
  try {
    while (!signal.aborted) {
      const start: MessageInitShape<typeof SubscribeRequestSchema>["start"] =
        after !== undefined
          ? { case: "afterPosition", value: after }
          : { case: "startPoint", value: options.from === "end" ? StartPoint.END : StartPoint.START };
      try {
        const subscriptionName = confirmed ? "" : (options.name ?? "");
        for await (const m of open({ stream: options.stream ?? "", filter, start, subscriptionName, resolveLinks: options.resolveLinks ?? false }, signal)) {
          switch (m.message.case) {
            case "confirmation":
              // The first call's start (the end, a checkpoint) becomes a position to resume after.
              if (!confirmed) after = m.message.value.afterPosition;
              confirmed = true;
              break;
            case "events":
              failures = 0;
              for (const e of m.message.value.events) {
                // A resolved link's place in the log is the link's, not its target's.
                after = (e.link ?? e).position;
                yield fromProtoEvent(e);
              }
              break;
            case "checkpoint":
              if (after === undefined || m.message.value.position > after) after = m.message.value.position;
              break;
            case "caughtUp":
              failures = 0;
              if (after === undefined || m.message.value.position > after) after = m.message.value.position;
              options.onCaughtUp?.(m.message.value.position);
              break;
          }
        }
        if (signal.aborted) return;
        throw new Error("the server ended the subscription");
      } catch (e) {
        if (signal.aborted) return;
        const error = toClientError(e);
        if (!RETRYABLE.has(error.code)) throw error;
        failures++;
        options.onReconnect?.(error, failures);
        const delay = Math.min(policy.initialDelayMs * 2 ** (failures - 1), policy.maxDelayMs);
        await sleep(delay, undefined, { signal }).catch(() => {});
      }
    }
  } finally {
    // The consumer stopped (break, return, throw): end the call.
    controller.abort();
  }
}

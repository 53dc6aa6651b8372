import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import {
  EventBatchSchema,
  StartPoint,
  SubscribeResponseSchema,
  type SubscribeRequest,
  type SubscribeResponse,
} from "../../gen/eventstore/v1/eventstore_pb";
import {
  invalidArgument,
  LINK_EVENT_TYPE,
  validateFilter,
  validateStreamName,
  validateSubscriptionName,
  type Limits,
  type Logger,
  type Principal,
  type RecordedEvent,
} from "../domain";
import { createMetrics, type Metrics } from "../metrics";
import { subscribe, type StartFrom, type SubscriptionMessage, type SubscriptionRequest, type SubscriptionSettings } from "../subscriptions";
import { CALL_RECORD, countEvents } from "./call-record";
import { callEnded, toConnectError } from "./connect-error";
import type { Guard } from "./guard";
import type { SubscriptionLimits } from "./subscription-limits";
import { encodeRecordedEvent } from "./recorded-event-encoder";
import { DEFAULT_MESSAGE_BYTES, eventMessages, eventWire, type EncodeEvent } from "./event-messages";
import { toFilter, toJsonEncoding, toStartNumber } from "./proto-to-domain";

export interface SubscribeOptions {
  settings: SubscriptionSettings;
  limits: Limits;
  log: Logger;
  shutdown: AbortSignal;
  defaultHeartbeatMs: number;
  /** Who may subscribe to what: asked before the confirmation. */
  guard: Guard;
  /** Open subscriptions, per server and per principal: counted before the confirmation. */
  subscriptionLimits: SubscriptionLimits;
  /** Most bytes of encoded events in one response message (a message holds at least one event). */
  messageBytes?: number;
  /** Counts open subscriptions, the events they deliver and their falls behind. */
  metrics?: Metrics;
}

const MIN_HEARTBEAT_MS = 100;
const MAX_HEARTBEAT_MS = 3_600_000;

/** Serves EventStoreService.Subscribe: request checks, then the subscription's messages as proto. */
export function createSubscribeHandler(options: SubscribeOptions) {
  const { log, shutdown, guard } = options;
  const metrics = (options.metrics ?? createMetrics()).subscriptions;
  // Every kind is shown from the start, at 0.
  const kinds = (["plain", "durable", "consumer_group"] as const).map((kind) => {
    const counted = { open: metrics.open.labels({ kind }), delivered: metrics.delivered.labels({ kind }) };
    counted.open.inc(0);
    counted.delivered.inc(0);
    return counted;
  });
  // Every live subscriber gets the same event objects from the feed: encode each once, for all.
  const encoded = [new WeakMap<RecordedEvent, Uint8Array>(), new WeakMap<RecordedEvent, Uint8Array>()];
  const encodeShared: EncodeEvent = (e, payloadAsJson) => {
    const cache = encoded[payloadAsJson ? 1 : 0];
    let bytes = cache.get(e);
    if (!bytes) cache.set(e, (bytes = encodeRecordedEvent(e, payloadAsJson)));
    return bytes;
  };

  // Live subscribers also get the same link events: each is resolved once, in one query for the
  // links of the batch that first meets it, and the answer is shared with every other subscriber.
  const resolved = new WeakMap<RecordedEvent, Promise<RecordedEvent>>();
  const resolveShared = async (events: RecordedEvent[]): Promise<RecordedEvent[]> => {
    const missing = events.filter((e) => e.type === LINK_EVENT_TYPE && !resolved.has(e));
    if (missing.length > 0) {
      const answer = options.settings.store.resolveLinks(missing).catch((e) => {
        for (const m of missing) resolved.delete(m); // not kept: the next subscriber asks again
        throw e;
      });
      missing.forEach((e, i) => resolved.set(e, answer.then((r) => r[i])));
    }
    return events.some((e) => resolved.has(e)) ? Promise.all(events.map((e) => resolved.get(e) ?? e)) : events;
  };

  return async function* (req: SubscribeRequest, ctx: HandlerContext): AsyncGenerator<SubscribeResponse> {
    let request: SubscriptionRequest;
    let asJson: boolean;
    let principal: Principal;
    let release: () => void;
    try {
      request = toSubscriptionRequest(req, options.defaultHeartbeatMs);
      const { stream, filter } = request.selection;
      principal = await guard.authorize(ctx, "subscribe", stream !== undefined
        ? { kind: "stream", name: stream }
        : { kind: "log", category: filter.category, prefix: filter.streamPrefix });
      if (request.name !== undefined) await guard.authorize(ctx, "checkpoint", { kind: "subscription", name: request.name });
      // Before the confirmation: a subscription that is confirmed is one that can run.
      validateFilter(request.selection.filter, options.limits);
      asJson = toJsonEncoding(req.dataEncoding);
      release = options.subscriptionLimits.open(principal.name); // last: nothing after it refuses
      request = { ...request, selection: { ...request.selection, reader: principal.name } };
    } catch (e) {
      throw toConnectError(e, log);
    }
    const signal = AbortSignal.any([ctx.signal, shutdown]);
    const counted = kinds[request.selection.filter.group ? 2 : request.name !== undefined ? 1 : 0];
    counted.open.inc();
    const record = ctx.values.get(CALL_RECORD);
    try {
      const wire = eventWire(ctx, asJson);
      for await (const m of subscribe(options.settings, request, signal)) {
        if (m.kind === "fell_behind") metrics.fellBehind.inc();
        if (m.kind !== "events") {
          yield toResponse(m);
          continue;
        }
        const encode = m.live ? encodeShared : encodeRecordedEvent;
        const events = !req.resolveLinks
          ? m.events
          : guard.readable(principal, m.events, m.live ? await resolveShared(m.events) : await options.settings.store.resolveLinks(m.events));
        for (const batch of eventMessages(EventBatchSchema, events, wire, options.messageBytes ?? DEFAULT_MESSAGE_BYTES, encode)) {
          yield create(SubscribeResponseSchema, { message: { case: "events", value: batch } });
        }
        counted.delivered.inc(events.length);
        countEvents(record, events.length);
      }
    } catch (e) {
      if (ctx.signal.aborted) throw callEnded(ctx.signal);
      if (!shutdown.aborted) throw toConnectError(e, log);
    } finally {
      counted.open.dec();
      release();
    }
    // A subscription ends only when its client goes, its deadline passes or the server stops.
    if (ctx.signal.aborted) throw callEnded(ctx.signal);
    if (shutdown.aborted) throw new ConnectError("The server is shutting down", Code.Unavailable);
  };
}

function toSubscriptionRequest(req: SubscribeRequest, defaultHeartbeatMs: number): SubscriptionRequest {
  const stream = req.stream === "" ? undefined : validateStreamName(req.stream);
  const filter = toFilter(req.filter);
  if (req.consumerGroup) {
    if (stream !== undefined) throw invalidArgument("consumer_group", "a consumer group follows the whole log, not one stream");
    filter.group = { member: req.consumerGroup.member, size: req.consumerGroup.size };
  }
  let start: StartFrom;
  switch (req.start.case) {
    case undefined:
      start = { kind: "start" };
      break;
    case "startPoint": {
      const point: number = req.start.value;
      if (point === StartPoint.UNSPECIFIED || point === StartPoint.START) start = { kind: "start" };
      else if (point === StartPoint.END) start = { kind: "end" };
      else throw invalidArgument("start_point", `unknown enum value ${point}`);
      break;
    }
    case "afterPosition":
      start = { kind: "after_position", position: toStartNumber(req.start.value) };
      break;
    case "afterRevision":
      if (stream === undefined) throw invalidArgument("after_revision", "after_revision needs a stream subscription");
      start = { kind: "after_revision", revision: toStartNumber(req.start.value) };
      break;
  }
  const heartbeatMs = req.heartbeatIntervalMs === 0 ? defaultHeartbeatMs : req.heartbeatIntervalMs;
  if (heartbeatMs < MIN_HEARTBEAT_MS || heartbeatMs > MAX_HEARTBEAT_MS) {
    throw invalidArgument("heartbeat_interval_ms", `must be 0 or ${MIN_HEARTBEAT_MS}..${MAX_HEARTBEAT_MS}`);
  }
  return {
    selection: { stream, filter },
    start,
    name: req.subscriptionName === "" ? undefined : validateSubscriptionName(req.subscriptionName),
    heartbeatMs,
  };
}

function toResponse(m: Exclude<SubscriptionMessage, { kind: "events" }>): SubscribeResponse {
  switch (m.kind) {
    case "confirmation":
      return create(SubscribeResponseSchema, { message: { case: "confirmation", value: { subscriptionId: m.id, afterPosition: m.after } } });
    case "caught_up":
      return create(SubscribeResponseSchema, { message: { case: "caughtUp", value: { position: m.position } } });
    case "fell_behind":
      return create(SubscribeResponseSchema, { message: { case: "fellBehind", value: { position: m.position } } });
    case "checkpoint":
      return create(SubscribeResponseSchema, { message: { case: "checkpoint", value: { position: m.position } } });
    case "heartbeat":
      return create(SubscribeResponseSchema, { message: { case: "heartbeat", value: { time: timestampFromDate(m.time) } } });
  }
}

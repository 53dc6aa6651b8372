import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import type { MessageShape } from "@bufbuild/protobuf";
import { EventStoreService, ReadAllResponseSchema, ReadStreamResponseSchema } from "../../gen/eventstore/v1/eventstore_pb";
import {
  requireStorableText,
  validateAppends,
  validateStreamName,
  validateSubscriptionName,
  type Limits,
  type Logger,
  type Principal,
  type RecordedEvent,
  type StreamAppend,
  type Target,
} from "../domain";
import type { EventStore } from "../store";
import { callEnded, toConnectError } from "./connect-error";
import type { Guard } from "./guard";
import { decodePageToken, encodePageToken, toPageSize } from "./page-token";
import type { createSubscribeHandler } from "./subscribe-handler";
import { CALL_RECORD, countEvents } from "./call-record";
import { fromAppendResult, fromStreamInfo } from "./domain-to-proto";
import { DEFAULT_MESSAGE_BYTES, eventMessages, eventWire } from "./event-messages";
import { toDirection, toExpectedRevision, toFilter, toJsonEncoding, toLimit, toStartNumber, toStoredNumber, toStreamAppend } from "./proto-to-domain";

export interface EventStoreServiceOptions {
  store: EventStore;
  limits: Limits;
  log: Logger;
  /** Aborted when the server shuts down: open streams then end with UNAVAILABLE. */
  shutdown: AbortSignal;
  /** Most event bytes in one streamed response message (a message holds at least one event). */
  messageBytes?: number;
  /** Serves Subscribe (see subscribe-handler.ts). */
  subscribe: ReturnType<typeof createSubscribeHandler>;
  /** Who may do what: asked first by every method. */
  guard: Guard;
}

/** Serves eventstore.v1.EventStoreService on the store: proto in, domain calls, proto out. */
export function registerEventStoreService(router: ConnectRouter, options: EventStoreServiceOptions): void {
  const { store, limits, log, shutdown, guard } = options;
  const messageBytes = options.messageBytes ?? DEFAULT_MESSAGE_BYTES;

  async function unary<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw toConnectError(e, log);
    }
  }

  /** Streams event pages as messages of at most `messageBytes`, until done, cancelled or shut down. */
  async function* stream<S extends typeof ReadStreamResponseSchema | typeof ReadAllResponseSchema>(
    ctx: HandlerContext,
    schema: S,
    pages: (signal: AbortSignal) => AsyncIterable<RecordedEvent[]>,
    asJson: boolean,
  ): AsyncGenerator<MessageShape<S>> {
    const signal = AbortSignal.any([ctx.signal, shutdown]);
    const wire = eventWire(ctx, asJson);
    try {
      const record = ctx.values.get(CALL_RECORD);
      for await (const page of pages(signal)) {
        yield* eventMessages(schema, page, wire, messageBytes);
        countEvents(record, page.length);
        if (shutdown.aborted) break;
      }
    } catch (e) {
      throw ctx.signal.aborted ? callEnded(ctx.signal) : toConnectError(e, log);
    }
    // Pages end early, without an error, when the signal aborts: the reader must not take a
    // read cut short for a whole one.
    if (ctx.signal.aborted) throw callEnded(ctx.signal);
    if (shutdown.aborted) throw new ConnectError("The server is shutting down", Code.Unavailable);
  }

  /**
   * The pages, with each link event replaced by the event it points to if `resolve` is set and
   * the caller may read that event's stream.
   */
  async function* withLinks(pages: AsyncIterable<RecordedEvent[]>, resolve: boolean, principal: Principal): AsyncGenerator<RecordedEvent[]> {
    for await (const page of pages) yield resolve ? guard.readable(principal, page, await store.resolveLinks(page)) : page;
  }

  /**
   * The call's signal without the server's shutdown in it: an append on its way when the server
   * stops is still written (a graceful stop lets in-flight appends finish); only a client that
   * gives up (a cancel, its deadline) takes back an append not yet sent.
   */
  function clientSignal(ctx: HandlerContext): AbortSignal {
    const client = new AbortController();
    ctx.signal.addEventListener("abort", () => shutdown.aborted || client.abort(ctx.signal.reason), { once: true });
    return client.signal;
  }

  /** The call's events and their data's bytes, for its log line. */
  function countWritten(ctx: HandlerContext, appends: StreamAppend[]): void {
    const record = ctx.values.get(CALL_RECORD);
    for (const a of appends) countEvents(record, a.events.length, a.events.reduce((n, e) => n + e.data.byteLength, 0));
  }

  router.service(EventStoreService, {
    append: (req, ctx) =>
      unary(async () => {
        await guard.authorize(ctx, "write", { kind: "stream", name: validateStreamName(req.stream) });
        const append = toStreamAppend(req);
        validateAppends([append], limits, false);
        const [result] = await store.append([append], clientSignal(ctx));
        countWritten(ctx, [append]);
        return fromAppendResult(result);
      }),

    multiStreamAppend: (req, ctx) =>
      unary(async () => {
        for (const [i, a] of req.appends.entries()) {
          await guard.authorize(ctx, "write", { kind: "stream", name: validateStreamName(a.stream, `appends[${i}].stream`) });
        }
        const appends = req.appends.map((a, i) => toStreamAppend(a, `appends[${i}].`));
        validateAppends(appends, limits, true);
        const results = await store.append(appends, clientSignal(ctx));
        countWritten(ctx, appends);
        return { results: results.map(fromAppendResult) };
      }),

    async *readStream(req, ctx) {
      let asJson = false;
      let pages: (signal: AbortSignal) => AsyncIterable<RecordedEvent[]>;
      try {
        const principal = await guard.authorize(ctx, "read", { kind: "stream", name: validateStreamName(req.stream) });
        asJson = toJsonEncoding(req.dataEncoding);
        const opts = { direction: toDirection(req.direction), fromRevision: req.fromRevision === undefined ? undefined : toStartNumber(req.fromRevision), limit: toLimit(req.limit) };
        pages = (signal) => withLinks(store.readStream(req.stream, opts, signal), req.resolveLinks, principal);
      } catch (e) {
        throw toConnectError(e, log);
      }
      yield* stream(ctx, ReadStreamResponseSchema, pages, asJson);
    },

    async *readAll(req, ctx) {
      let asJson = false;
      let pages: (signal: AbortSignal) => AsyncIterable<RecordedEvent[]>;
      try {
        const filter = toFilter(req.filter);
        const principal = await guard.authorize(ctx, "read", { kind: "log", category: filter.category, prefix: filter.streamPrefix });
        asJson = toJsonEncoding(req.dataEncoding);
        const opts = {
          direction: toDirection(req.direction),
          fromPosition: req.fromPosition === undefined ? undefined : toStartNumber(req.fromPosition),
          limit: toLimit(req.limit),
          filter,
          reader: principal.name,
        };
        pages = (signal) => withLinks(store.readAll(opts, signal), req.resolveLinks, principal);
      } catch (e) {
        throw toConnectError(e, log);
      }
      yield* stream(ctx, ReadAllResponseSchema, pages, asJson);
    },

    listStreams: (req, ctx) =>
      unary(async () => {
        requireStorableText(req.prefix, "prefix");
        await guard.authorize(ctx, "read", { kind: "log", prefix: req.prefix === "" ? undefined : req.prefix });
        const pageSize = toPageSize(req.pageSize);
        const after = req.pageToken === "" ? undefined : decodePageToken(req.pageToken, req.prefix);
        const page = await store.listStreams({ prefix: req.prefix, pageSize, after, includeDeleted: req.includeDeleted });
        return {
          streams: page.streams.map(fromStreamInfo),
          nextPageToken: page.last === undefined ? "" : encodePageToken(page.last, req.prefix),
        };
      }),

    getStream: (req, ctx) =>
      unary(async () => {
        await guard.authorize(ctx, "read", { kind: "stream", name: validateStreamName(req.stream) });
        return { stream: fromStreamInfo(await store.getStream(req.stream)) };
      }),

    deleteStream: (req, ctx) =>
      unary(async () => {
        const target: Target = { kind: "stream", name: validateStreamName(req.stream) };
        const principal = await guard.authorize(ctx, "delete", target);
        const info = await guard.audited("delete_stream", principal, target, () =>
          store.deleteStream(req.stream, toExpectedRevision(req.expected), "soft"),
        );
        return { stream: fromStreamInfo(info) };
      }),

    tombstoneStream: (req, ctx) =>
      unary(async () => {
        const target: Target = { kind: "stream", name: validateStreamName(req.stream) };
        const principal = await guard.authorize(ctx, "delete", target);
        const info = await guard.audited("tombstone_stream", principal, target, () =>
          store.deleteStream(req.stream, toExpectedRevision(req.expected), "tombstone"),
        );
        return { stream: fromStreamInfo(info) };
      }),

    subscribe: options.subscribe,

    commitCheckpoint: (req, ctx) =>
      unary(async () => {
        const target: Target = { kind: "subscription", name: validateSubscriptionName(req.subscriptionName) };
        const principal = await guard.authorize(ctx, "checkpoint", target);
        await guard.audited("commit_checkpoint", principal, target, () => store.commitCheckpoint(req.subscriptionName, toStoredNumber(req.position, "position")));
        return {};
      }),

    getCheckpoint: (req, ctx) =>
      unary(async () => {
        await guard.authorize(ctx, "checkpoint", { kind: "subscription", name: validateSubscriptionName(req.subscriptionName) });
        const checkpoint = await store.getCheckpoint(req.subscriptionName);
        return checkpoint ? { position: checkpoint.position, committedAt: timestampFromDate(checkpoint.committedAt) } : {};
      }),
  });
}

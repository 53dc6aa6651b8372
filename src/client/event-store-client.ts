import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import {
  Direction,
  EventStoreService,
  ExpectedState,
  type StreamInfo as ProtoStreamInfo,
} from "../../gen/eventstore/v1/eventstore_pb";
import { ProjectionService } from "../../gen/eventstore/v1/projections_pb";
import { toClientError } from "./errors";
import { createProjectionRecords, type ProjectionRecords } from "./projection-records";
import { fromProtoEvent, toProposedEvent, type EventData, type RecordedEvent } from "./events";
import { toProtoFilter, type EventFilter } from "./filter";
import { resumingSubscription, type ReconnectPolicy, type SubscribeOptions } from "./subscription";

export interface EventStoreClientOptions {
  /** The server: http://host:port, or https:// with TLS. */
  url: string;
  /**
   * "grpc" (the default): gRPC over HTTP/2. "connect": the Connect protocol over HTTP/1.1, for
   * proxies and load balancers that speak no HTTP/2.
   */
  protocol?: "grpc" | "connect";
  /** How subscriptions reconnect; the defaults are 100 ms doubling up to 5 s. */
  reconnect?: Partial<ReconnectPolicy>;
  /**
   * A bearer token (an API key or a JWT) sent as `authorization: Bearer <token>` on every call;
   * a function is asked before each call, so that a JWT can be renewed as it nears expiry.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * TLS settings beyond the system's CAs: the server's CA (`ca`), and for mTLS the client's
   * certificate and key (`cert`, `key`), PEM.
   */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
}

/** The revision of the stream's last event, or what the stream must be. Unset: any. */
export type ExpectedRevision = bigint | "any" | "no_stream" | "stream_exists";

export interface AppendResult {
  stream: string;
  /** The stream's revision after the append: its last event's. */
  revision: bigint;
  positions: bigint[];
  eventIds: string[];
  committedAt: Date;
}

export interface ReadStreamOptions {
  direction?: "forwards" | "backwards";
  /** The first revision read (inclusive); unset: the stream's first (forwards) or last (backwards). */
  fromRevision?: bigint;
  limit?: number;
  /** Link events come as the events they point to (with `link` set). */
  resolveLinks?: boolean;
}

export interface ReadAllOptions {
  direction?: "forwards" | "backwards";
  /** The first global position read (inclusive). */
  fromPosition?: bigint;
  limit?: number;
  filter?: EventFilter;
  /** Link events come as the events they point to (with `link` set). */
  resolveLinks?: boolean;
}

export interface StreamInfo {
  name: string;
  revision?: bigint;
  position?: bigint;
  firstRevision: bigint;
  createdAt?: Date;
  updatedAt?: Date;
  deleted: boolean;
  tombstoned: boolean;
}

export interface EventStoreClient {
  append(stream: string, events: EventData[], options?: { expectedRevision?: ExpectedRevision }): Promise<AppendResult>;
  readStream(stream: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  getStream(stream: string): Promise<StreamInfo>;
  deleteStream(stream: string, options?: { expectedRevision?: ExpectedRevision }): Promise<void>;
  tombstoneStream(stream: string, options?: { expectedRevision?: ExpectedRevision }): Promise<void>;
  /** Every matching event, once, in order: the history, then live; reconnects and resumes on its own. */
  subscribe(options?: SubscribeOptions): AsyncIterable<RecordedEvent>;
  /** Stores the position a named (durable) subscription has processed; `subscribe({ name })` resumes after it. */
  commitCheckpoint(name: string, position: bigint): Promise<void>;
  /** The position committed under a name; undefined when there is none. */
  getCheckpoint(name: string): Promise<bigint | undefined>;
  /** The server's projection records: create, watch and control projections from anywhere. */
  readonly projections: ProjectionRecords;
  /** Closes the connection; calls still open fail. */
  close(): void;
}

/**
 * HTTP/2 lets the server send only as far ahead as the client's receive window (64 KiB by
 * default); with grpc-js, a 4 MiB window made catch-up a fifth faster (docs/benchmarks.md).
 * Through this client (with it), catch-up measured about 100,000 events/s for a million events;
 * its effect here, where protobuf-es decoding may be the bound, was not measured apart.
 */
const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

function bearer(token: NonNullable<EventStoreClientOptions["token"]>): Interceptor {
  return (next) => async (req) => {
    req.header.set("authorization", `Bearer ${typeof token === "string" ? token : await token()}`);
    return next(req);
  };
}

/** A client of an eventstore.v1 server: typed calls, typed errors, resuming subscriptions. */
export function createEventStoreClient(options: EventStoreClientOptions): EventStoreClient {
  const policy: ReconnectPolicy = { initialDelayMs: 100, maxDelayMs: 5000, ...options.reconnect };
  let sessionManager: Http2SessionManager | undefined;
  const interceptors = options.token === undefined ? [] : [bearer(options.token)];
  const transport =
    options.protocol === "connect"
      ? createConnectTransport({ baseUrl: options.url, httpVersion: "1.1", interceptors, nodeOptions: options.tls })
      : createGrpcTransport({
          baseUrl: options.url,
          interceptors,
          sessionManager: (sessionManager = new Http2SessionManager(options.url, undefined, {
            ...options.tls,
            settings: { initialWindowSize: RECEIVE_WINDOW_BYTES },
          })),
        });
  const rpc: Client<typeof EventStoreService> = createClient(EventStoreService, transport);
  // close() ends every call and subscription of this client (a subscription would reconnect).
  const closed = new AbortController();
  const signal = closed.signal;

  async function call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw toClientError(e);
    }
  }

  async function* events(source: () => AsyncIterable<{ events: Parameters<typeof fromProtoEvent>[0][] }>): AsyncGenerator<RecordedEvent> {
    try {
      for await (const batch of source()) for (const e of batch.events) yield fromProtoEvent(e);
    } catch (e) {
      throw toClientError(e);
    }
  }

  return {
    append: (stream, events, opts = {}) =>
      call(async () => {
        const res = await rpc.append({ stream, events: events.map(toProposedEvent), expected: expected(opts.expectedRevision) }, { signal });
        return {
          stream: res.stream,
          revision: res.revision,
          positions: res.positions,
          eventIds: res.eventIds,
          committedAt: res.committedAt ? timestampDate(res.committedAt) : new Date(0),
        };
      }),
    readStream: (stream, opts = {}) =>
      events(() =>
        rpc.readStream(
          {
            stream,
            direction: opts.direction === "backwards" ? Direction.BACKWARDS : Direction.FORWARDS,
            fromRevision: opts.fromRevision,
            limit: opts.limit === undefined ? 0n : BigInt(opts.limit),
            resolveLinks: opts.resolveLinks ?? false,
          },
          { signal },
        ),
      ),
    readAll: (opts = {}) =>
      events(() =>
        rpc.readAll(
          {
            direction: opts.direction === "backwards" ? Direction.BACKWARDS : Direction.FORWARDS,
            fromPosition: opts.fromPosition,
            limit: opts.limit === undefined ? 0n : BigInt(opts.limit),
            filter: toProtoFilter(opts.filter),
            resolveLinks: opts.resolveLinks ?? false,
          },
          { signal },
        ),
      ),
    getStream: (stream) => call(async () => fromStreamInfo((await rpc.getStream({ stream }, { signal })).stream)),
    deleteStream: (stream, opts = {}) =>
      call(async () => void (await rpc.deleteStream({ stream, expected: expected(opts.expectedRevision) }, { signal }))),
    tombstoneStream: (stream, opts = {}) =>
      call(async () => void (await rpc.tombstoneStream({ stream, expected: expected(opts.expectedRevision) }, { signal }))),
    commitCheckpoint: (name, position) =>
      call(async () => void (await rpc.commitCheckpoint({ subscriptionName: name, position }, { signal }))),
    getCheckpoint: (name) => call(async () => (await rpc.getCheckpoint({ subscriptionName: name }, { signal })).position),
    subscribe: (opts = {}) =>
      resumingSubscription(
        (request, callSignal) => rpc.subscribe(request, { signal: callSignal }),
        { ...opts, signal: opts.signal ? AbortSignal.any([opts.signal, signal]) : signal },
        policy,
      ),
    projections: createProjectionRecords(createClient(ProjectionService, transport), signal),
    close: () => {
      closed.abort();
      sessionManager?.abort();
    },
  };
}

function expected(revision: ExpectedRevision | undefined) {
  switch (revision) {
    case undefined:
    case "any":
      return { case: "expectedState" as const, value: ExpectedState.ANY };
    case "no_stream":
      return { case: "expectedState" as const, value: ExpectedState.NO_STREAM };
    case "stream_exists":
      return { case: "expectedState" as const, value: ExpectedState.STREAM_EXISTS };
    default:
      return { case: "expectedRevision" as const, value: revision };
  }
}

function fromStreamInfo(s: ProtoStreamInfo | undefined): StreamInfo {
  if (!s) throw new Error("the server answered GetStream without a stream");
  return {
    name: s.name,
    revision: s.revision,
    position: s.position,
    firstRevision: s.firstRevision,
    createdAt: s.createdAt ? timestampDate(s.createdAt) : undefined,
    updatedAt: s.updatedAt ? timestampDate(s.updatedAt) : undefined,
    deleted: s.deleted,
    tombstoned: s.tombstoned,
  };
}

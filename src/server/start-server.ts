import type { TLSSocket } from "node:tls";
import { createContextValues, type ConnectRouter, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { file_eventstore_v1_eventstore } from "../../gen/eventstore/v1/eventstore_pb";
import { file_eventstore_v1_projections } from "../../gen/eventstore/v1/projections_pb";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb";
import { file_grpc_reflection_v1alpha_reflection } from "../../gen/grpc/reflection/v1alpha/reflection_pb";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb";
import { file_google_rpc_status } from "../../gen/google/rpc/status_pb";
import { checkAppendBodies } from "../api/append-body-check";
import { createAppendDecoders } from "../api/append-request-decoder";
import { createHealthState, registerHealthService, ServingStatus } from "../api/health-service";
import { registerEventStoreService } from "../api/event-store-service";
import { registerProjectionService } from "../api/projection-service";
import { readDocumentedDescriptors } from "../api/documented-descriptors";
import { registerReflectionService } from "../api/reflection-service";
import { createSubscribeHandler } from "../api/subscribe-handler";
import { createSubscriptionLimits } from "../api/subscription-limits";
import type { CallRecord } from "../api/call-record";
import { CALLER, createGuard } from "../api/guard";
import { toConnectError } from "../api/connect-error";
import { createLiveFeed } from "../subscriptions";
import { isEventStoreError, type Logger } from "../domain";
import { createMetrics, type Metrics } from "../metrics";
import { openStore, type EventStore } from "../store";
import { isLoopback, type Config } from "./config";
import { withSpecGrpcMessage } from "./grpc-message-encoding";
import { createGrpcUnaryFastPath } from "./grpc-unary-fast-path";
import { loadAccessControl, type AccessControl } from "./access-control";
import type { Credentials } from "./authenticator";
import { createCallObserver, type MethodKind } from "./call-observer";
import { withCallTurns } from "./call-turns";
import { listen, type RequestHandler } from "./listen";
import { monitorEventLoop } from "./event-loop-monitor";
import { serveMetrics } from "./metrics-server";
import { requestStreamPaths, withRequestBodyTimeout } from "./request-body-timeout";
import { withRequestBodyBudget } from "./request-body-budget";
import { createRequestBudget } from "./request-budget";
import { requestDecompressions } from "./request-decompression";
import { requestSizeLimits, withRequestSizeLimits } from "./request-size-limits";
import { withStreamingJsonHint } from "./streaming-json-hint";
import { readTls, watchTls } from "./tls-files";

export interface RunningServer {
  port: number;
  /** The metrics port, when served. */
  metricsPort?: number;
  store: EventStore;
  metrics: Metrics;
  /** Subscriptions now attached to live delivery (for tests and diagnostics). */
  liveSubscribers(): number;
  /** Request bytes held now for calls whose requests are still arriving (for tests and diagnostics). */
  bufferedRequestBytes(): number;
  /** Reads the auth file and the TLS files again (SIGHUP); a file that fails to load leaves the last good one. */
  reload(): void;
  /** Graceful stop: refuse new calls, end open streams with UNAVAILABLE, let in-flight appends finish. */
  stop(): Promise<void>;
}

const SERVICE = "eventstore.v1.EventStoreService";

/** Opens the store (waiting for the database if it is not up yet), then serves every API on one port. */
export async function startServer(config: Config, log: Logger, cancel?: AbortSignal): Promise<RunningServer> {
  // Before the database: a mistake in these files is found at once, not after a wait.
  const tls = config.tls ? readTls(config.tls) : undefined;
  const access = config.authFile ? loadAccessControl(config.authFile, log) : undefined;
  const metrics = createMetrics({
    process: true,
    onCollectError: (what, e) => log.warn("a metric could not be collected", { metric: what, cause: causeOf(e) }),
  });
  let store: EventStore;
  try {
    store = await openStoreWhenReady(config, log, metrics, cancel);
  } catch (e) {
    access?.close();
    throw e;
  }
  const shutdown = new AbortController();
  const health = createHealthState();
  const guard = createGuard({ policy: access && (() => access.policy()), audit: (action, fields) => log.info("audit", { action, ...fields }) });
  let methods: ReadonlyMap<string, MethodKind> = new Map();
  const observer = createCallObserver({ metrics, methods: () => methods, log, slowCallMs: config.slowCallMs });
  const contextValues = (req: Parameters<RequestHandler>[0]) => observer.contextValues(req, access ? callerValues(access, req, observer.recordOf(req)) : undefined);
  metrics.sources.consumerLag = () => store.consumerLag(config.metrics.maxConsumers);
  const feed = createLiveFeed({ store, log, pollIntervalMs: config.subscriptions.pollIntervalMs, pageSize: 1000, metrics });
  await feed.start();
  const subscribe = createSubscribeHandler({
    settings: {
      store,
      feed,
      queue: { maxEvents: config.subscriptions.bufferEvents, maxBytes: config.subscriptions.bufferBytes },
      pageSize: 1000,
      checkpointIntervalMs: config.subscriptions.checkpointIntervalMs,
    },
    limits: config.limits,
    log,
    shutdown: shutdown.signal,
    defaultHeartbeatMs: config.subscriptions.heartbeatMs,
    guard,
    subscriptionLimits: createSubscriptionLimits({ maxPerServer: config.maxSubscriptions, maxPerPrincipal: config.maxSubscriptionsPerPrincipal }),
    metrics,
  });
  // Oversized requests are refused before they are buffered, each method's at its own size.
  const sizes = requestSizeLimits(config.limits, config.connections.maxRequestBytes);
  // Many slow requests together are bounded by this, each one by its size limit and the body timeout.
  const requestBudget = createRequestBudget(config.connections.maxBufferedRequestBytes);
  const unary = createGrpcUnaryFastPath({
    sizes,
    budget: requestBudget,
    shutdown: shutdown.signal,
    log,
    decoders: createAppendDecoders(config.limits, log),
    contextValues,
    requestBodyTimeoutMs: config.connections.requestBodyTimeoutMs,
  });
  let requestStreams: ReadonlySet<string> = new Set();
  let serverStreams: ReadonlySet<string> = new Set();
  const connect = connectNodeAdapter({
    routes(connectRouter) {
      const router = unary.wrap(withRequestSizeLimits(connectRouter, sizes));
      registerEventStoreService(router, { store, limits: config.limits, log, shutdown: shutdown.signal, subscribe, guard });
      // Appends that Connect serves get the fast path's wire check of the limits too.
      checkAppendBodies(connectRouter.handlers, { limits: config.limits, log, readMaxBytes: sizes.appends.maxBytes });
      registerProjectionService(router, { projections: store.projections, log, guard });
      registerHealthService(access?.isPublic("health") === false ? authenticated(router, log) : router, health, shutdown.signal);
      registerReflectionService(access?.isPublic("reflection") === false ? authenticated(router, log) : router, [
        file_eventstore_v1_eventstore,
        file_eventstore_v1_projections,
        file_grpc_health_v1_health,
        file_grpc_reflection_v1_reflection,
        file_grpc_reflection_v1alpha_reflection,
        // Not services: the error details every error carries, and the Status that holds them in
        // grpc-status-details-bin, so that grpcurl and other reflection clients decode both.
        file_google_rpc_error_details,
        file_google_rpc_status,
      ], readDocumentedDescriptors());
      requestStreams = requestStreamPaths(connectRouter.handlers);
      serverStreams = new Set(connectRouter.handlers.filter((h) => h.method.methodKind === "server_streaming").map((h) => h.requestPath));
      methods = new Map(connectRouter.handlers.map((h) => [h.requestPath, h.method.methodKind]));
    },
    interceptors: [observer.interceptor],
    readMaxBytes: sizes.largest,
    acceptCompression: requestDecompressions(sizes),
    contextValues,
    // Every common client offers gzip, and connect-node would then compress each message of
    // 1 KiB or more: for a subscription, one gzip run per event, which cost more CPU than
    // everything else together and let readers fall behind writers. Off unless asked for;
    // compressed requests are accepted either way.
    compressMinBytes: config.compressMinBytes === 0 ? Number.MAX_SAFE_INTEGER : config.compressMinBytes,
  }) as RequestHandler;
  const takesStream = (path: string) => requestStreams.has(path);
  // The budget's count is outermost: it sees each chunk as it comes from the request.
  const viaConnect = withRequestBodyBudget(
    withRequestBodyTimeout(withSpecGrpcMessage(connect), { timeoutMs: config.connections.requestBodyTimeoutMs, takesStream }),
    { budget: requestBudget, sizes, takesStream },
  );
  const handler: RequestHandler = withStreamingJsonHint((req, res) => {
    if (!unary.serve(req, res)) viaConnect(req, res);
  }, (path) => serverStreams.has(path));
  const listener = await listen(observer.wrap(withCallTurns(handler)), {
    host: config.host,
    port: config.port,
    tls,
    pingIntervalMs: config.pingIntervalMs,
    http1: {
      headersTimeoutMs: config.connections.http1HeadersTimeoutMs,
      requestTimeoutMs: config.connections.http1RequestTimeoutMs,
      keepAliveTimeoutMs: config.connections.http1KeepAliveTimeoutMs,
    },
    maxConcurrentStreams: config.connections.maxConcurrentStreams,
    maxConnections: config.connections.maxConnections,
    streamResets: { burst: config.connections.maxStreamResets, perSecond: config.connections.streamResetsPerSecond },
  });
  const reloadTls = () => {
    if (!config.tls) return;
    try {
      listener.setTls(readTls(config.tls));
      log.info("TLS certificates reloaded", { cert: config.tls.cert });
    } catch (e) {
      // A certificate renewed before its key: the key's change comes next and completes the pair.
      log.warn("TLS certificates not reloaded: the last good ones stay in force", { cause: (e as Error).message });
    }
  };
  metrics.sources.openConnections = listener.connections;
  const metricsServer = config.metrics.port === undefined ? undefined : await serveMetrics(metrics.registry, { host: config.metrics.host, port: config.metrics.port, log });
  const unwatchTls = config.tls ? watchTls(config.tls, reloadTls) : undefined;
  const setServing = (status: ServingStatus) => ["", SERVICE].forEach((service) => health.set(service, status));
  setServing(ServingStatus.SERVING);
  // A stuck event loop answers nothing well: a balancer asking health is told to go elsewhere.
  const loop = config.maxEventLoopLagMs > 0
    ? monitorEventLoop({
        maxLagMs: config.maxEventLoopLagMs,
        onChange(lagging, lagMs) {
          if (stopping) return;
          if (lagging) log.warn("event loop lagging: health answers NOT_SERVING", { lagMs: Math.round(lagMs), maxLagMs: config.maxEventLoopLagMs });
          else log.info("event loop on time again: health answers SERVING");
          setServing(lagging ? ServingStatus.NOT_SERVING : ServingStatus.SERVING);
        },
      })
    : undefined;
  log.info("ready", {
    address: `${config.tls ? "https" : "http"}://${config.host}:${listener.port}`,
    port: listener.port,
    store: config.location.kind === "postgres" ? "postgres" : `embedded (${config.location.dataDir})`,
    authentication: access
      ? [...access.tokenKinds(), ...(config.tls?.clientCa ? ["client certificates"] : [])].join(", ") || "none accepted: every call but public ones is refused"
      : config.insecure && !isLoopback(config.host)
        ? "none: --insecure, anyone who reaches this address may do anything"
        : "none: loopback only",
    ...(metricsServer ? { metrics: `http://${config.metrics.host}:${metricsServer.port}/metrics` } : {}),
  });

  let stopping: Promise<void> | undefined;
  return {
    port: listener.port,
    metricsPort: metricsServer?.port,
    store,
    metrics,
    liveSubscribers: () => feed.subscriberCount,
    bufferedRequestBytes: () => requestBudget.heldBytes,
    reload() {
      access?.reload();
      reloadTls();
    },
    stop() {
      stopping ??= (async () => {
        access?.close();
        unwatchTls?.();
        loop?.stop();
        setServing(ServingStatus.NOT_SERVING);
        shutdown.abort();
        await listener.close(config.shutdownGraceMs);
        await metricsServer?.close();
        await feed.stop();
        await store.close();
        log.info("stopped");
      })();
      return stopping;
    },
  };
}

/** The caller of a request, authenticated on first use: a call that needs no permission costs nothing. */
function callerValues(access: AccessControl, req: Parameters<RequestHandler>[0], record?: CallRecord): ContextValues {
  let principal: ReturnType<AccessControl["authenticate"]> | undefined;
  return createContextValues().set(CALLER, () =>
    (principal ??= access.authenticate(credentialsOf(req)).then((p) => {
      if (record) record.principal = p.name;
      return p;
    })),
  );
}

function credentialsOf(req: Parameters<RequestHandler>[0]): Credentials {
  const socket = req.socket as TLSSocket;
  return {
    authorization: req.headers.authorization,
    // Set only when the handshake verified a certificate against the client CA.
    certificate: socket.authorized === true ? socket.getPeerCertificate() : undefined,
  };
}

/** A router whose services refuse callers without valid credentials (health or reflection, when not public). */
function authenticated(router: ConnectRouter, log: Logger): ConnectRouter {
  const interceptor: Interceptor = (next) => async (req) => {
    try {
      await req.contextValues.get(CALLER)();
    } catch (e) {
      throw toConnectError(e, log);
    }
    return next(req);
  };
  return {
    get handlers() {
      return router.handlers;
    },
    service: (service, implementation, options) => router.service(service, implementation, { ...options, interceptors: [interceptor, ...(options?.interceptors ?? [])] }),
    rpc: (method, impl, options) => router.rpc(method, impl, { ...options, interceptors: [interceptor, ...(options?.interceptors ?? [])] }),
  };
}

/** The database's words under the store's error, for an operator's log. */
function causeOf(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  return cause instanceof Error ? cause.message : String(cause);
}

/** Startup was cancelled (a signal) while waiting for the database. */
export class StartCancelled extends Error {}

async function openStoreWhenReady(config: Config, log: Logger, metrics: Metrics, cancel?: AbortSignal): Promise<EventStore> {
  for (let attempt = 1; ; attempt++) {
    if (cancel?.aborted) throw new StartCancelled("start cancelled");
    try {
      return await openStore({
        location: config.location,
        limits: config.limits,
        log,
        listenProbeIntervalMs: config.subscriptions.listenProbeIntervalMs,
        statementTimeoutMs: config.statementTimeoutMs,
        scanWindow: config.scanWindow,
        maxConcurrentScans: config.maxConcurrentScans,
        metrics,
        slowQueryMs: config.slowQueryMs,
      });
    } catch (e) {
      // A locked data directory will not free itself by waiting.
      if (!isEventStoreError(e) || e.kind !== "UNAVAILABLE" || config.location.kind === "embedded") throw e;
      log.warn("database unavailable; retrying", { attempt, cause: e.cause instanceof Error ? e.cause.message : String(e.cause) });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(5000, 250 * attempt));
        cancel?.addEventListener("abort", done, { once: true });
        function done() {
          clearTimeout(timer);
          cancel?.removeEventListener("abort", done);
          resolve();
        }
      });
    }
  }
}

import { connectNodeAdapter } from "@connectrpc/connect-node";
import { AppendRequestSchema, file_eventstore_v1_eventstore } from "../../gen/eventstore/v1/eventstore_pb";
import { file_eventstore_v1_projections } from "../../gen/eventstore/v1/projections_pb";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb";
import { file_grpc_reflection_v1alpha_reflection } from "../../gen/grpc/reflection/v1alpha/reflection_pb";
import { decodeAppendRequest } from "../api/append-request-decoder";
import { createHealthState, registerHealthService, ServingStatus } from "../api/health-service";
import { registerEventStoreService } from "../api/event-store-service";
import { registerProjectionService } from "../api/projection-service";
import { registerReflectionService } from "../api/reflection-service";
import { createSubscribeHandler } from "../api/subscribe-handler";
import { createGuard } from "../api/guard";
import { createLiveFeed } from "../subscriptions";
import { isEventStoreError, type Logger } from "../domain";
import { openStore, type EventStore } from "../store";
import type { Config } from "./config";
import { withSpecGrpcMessage } from "./grpc-message-encoding";
import { createGrpcUnaryFastPath } from "./grpc-unary-fast-path";
import { listen, type RequestHandler } from "./listen";

export interface RunningServer {
  port: number;
  store: EventStore;
  /** Subscriptions now attached to live delivery (for tests and diagnostics). */
  liveSubscribers(): number;
  /** Graceful stop: refuse new calls, end open streams with UNAVAILABLE, let in-flight appends finish. */
  stop(): Promise<void>;
}

const SERVICE = "eventstore.v1.EventStoreService";

/** Opens the store (waiting for the database if it is not up yet), then serves every API on one port. */
export async function startServer(config: Config, log: Logger, cancel?: AbortSignal): Promise<RunningServer> {
  const store = await openStoreWhenReady(config, log, cancel);
  const shutdown = new AbortController();
  const health = createHealthState();
  const guard = createGuard({ audit: (action, fields) => log.info("audit", { action, ...fields }) });
  const feed = createLiveFeed({ store, log, pollIntervalMs: config.subscriptions.pollIntervalMs, pageSize: 1000 });
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
  });
  // Refuse oversized requests before buffering them: the append limit, plus room for base64
  // in Connect JSON and for the envelope.
  const readMaxBytes = Math.ceil(config.limits.maxAppendBytes * 1.4) + 1024 * 1024;
  const unary = createGrpcUnaryFastPath({
    readMaxBytes,
    shutdown: shutdown.signal,
    log,
    decoders: { [AppendRequestSchema.typeName]: decodeAppendRequest },
  });
  const connect = connectNodeAdapter({
    routes(connectRouter) {
      const router = unary.wrap(connectRouter);
      registerEventStoreService(router, { store, limits: config.limits, log, shutdown: shutdown.signal, subscribe, guard });
      registerProjectionService(router, { projections: store.projections, log, guard });
      registerHealthService(router, health, shutdown.signal);
      registerReflectionService(router, [
        file_eventstore_v1_eventstore,
        file_eventstore_v1_projections,
        file_grpc_health_v1_health,
        file_grpc_reflection_v1_reflection,
        file_grpc_reflection_v1alpha_reflection,
      ]);
    },
    readMaxBytes,
    // Every common client offers gzip, and connect-node would then compress each message of
    // 1 KiB or more: for a subscription, one gzip run per event, which cost more CPU than
    // everything else together and let readers fall behind writers. Off unless asked for;
    // compressed requests are accepted either way.
    compressMinBytes: config.compressMinBytes === 0 ? Number.MAX_SAFE_INTEGER : config.compressMinBytes,
  }) as RequestHandler;
  const viaConnect = withSpecGrpcMessage(connect);
  const handler: RequestHandler = (req, res) => {
    if (!unary.serve(req, res)) viaConnect(req, res);
  };
  const listener = await listen(handler, {
    host: config.host,
    port: config.port,
    tls: config.tls,
    pingIntervalMs: config.pingIntervalMs,
  });
  health.set("", ServingStatus.SERVING);
  health.set(SERVICE, ServingStatus.SERVING);
  log.info("ready", {
    address: `${config.tls ? "https" : "http"}://${config.host}:${listener.port}`,
    port: listener.port,
    store: config.location.kind === "postgres" ? "postgres" : `embedded (${config.location.dataDir})`,
  });

  let stopping: Promise<void> | undefined;
  return {
    port: listener.port,
    store,
    liveSubscribers: () => feed.subscriberCount,
    stop() {
      stopping ??= (async () => {
        health.set("", ServingStatus.NOT_SERVING);
        health.set(SERVICE, ServingStatus.NOT_SERVING);
        shutdown.abort();
        await listener.close(config.shutdownGraceMs);
        await feed.stop();
        await store.close();
        log.info("stopped");
      })();
      return stopping;
    },
  };
}

/** Startup was cancelled (a signal) while waiting for the database. */
export class StartCancelled extends Error {}

async function openStoreWhenReady(config: Config, log: Logger, cancel?: AbortSignal): Promise<EventStore> {
  for (let attempt = 1; ; attempt++) {
    if (cancel?.aborted) throw new StartCancelled("start cancelled");
    try {
      return await openStore({
        location: config.location,
        limits: config.limits,
        log,
        listenProbeIntervalMs: config.subscriptions.listenProbeIntervalMs,
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

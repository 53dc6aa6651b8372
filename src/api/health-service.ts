import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb";

export { ServingStatus };

/** The serving status of each service by its full name; "" is the whole server. */
export interface HealthState {
  get(service: string): ServingStatus | undefined;
  set(service: string, status: ServingStatus): void;
  /** The status now, then each time it changes, until `signal` aborts. Undefined: unknown service. */
  watch(service: string, signal: AbortSignal): AsyncIterable<ServingStatus | undefined>;
}

export function createHealthState(): HealthState {
  const statuses = new Map<string, ServingStatus>();
  const watchers = new Set<(service: string) => void>();
  return {
    get: (service) => statuses.get(service),
    set(service, status) {
      statuses.set(service, status);
      watchers.forEach((wake) => wake(service));
    },
    async *watch(service, signal) {
      let wake = () => {};
      const watcher = (changed: string) => changed === service && wake();
      const onAbort = () => wake();
      watchers.add(watcher);
      signal.addEventListener("abort", onAbort);
      try {
        // A watcher only needs the latest status, so changes made while it is busy coalesce.
        let yielded: ServingStatus | undefined | null = null;
        while (!signal.aborted) {
          const changed = new Promise<void>((resolve) => (wake = resolve));
          const status = statuses.get(service);
          if (status !== yielded) yield (yielded = status);
          await changed;
        }
      } finally {
        watchers.delete(watcher);
        signal.removeEventListener("abort", onAbort);
      }
    },
  };
}

/**
 * Serves grpc.health.v1.Health from `state`. Watch streams end with UNAVAILABLE when
 * `shutdownSignal` aborts, so that clients look for another server.
 */
export function registerHealthService(router: ConnectRouter, state: HealthState, shutdownSignal?: AbortSignal): void {
  router.service(Health, {
    check({ service }) {
      const status = state.get(service);
      if (status === undefined) throw new ConnectError(`unknown service: ${service}`, Code.NotFound);
      return { status };
    },
    async *watch({ service }, ctx) {
      const signal = shutdownSignal ? AbortSignal.any([ctx.signal, shutdownSignal]) : ctx.signal;
      for await (const status of state.watch(service, signal)) {
        yield { status: status ?? ServingStatus.SERVICE_UNKNOWN };
      }
      if (shutdownSignal?.aborted) throw new ConnectError("the server is shutting down", Code.Unavailable);
    },
  });
}

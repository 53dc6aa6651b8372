import type { ConnectRouter } from "@connectrpc/connect";
import { createServiceImplSpec } from "@connectrpc/connect";
import type { Limits } from "../domain";

/** The most bytes of one request message to a method, and the setting it follows. */
export interface RequestSize {
  maxBytes: number;
  setting: "max-request-bytes" | "max-append-bytes";
}

/** The largest request message each method takes, from its path (`/package.Service/Method`). */
export interface RequestSizeLimits {
  /** The size of one request message to `path`: a larger one is refused from its length. */
  of(path: string): RequestSize;
  /** Appends' limit. */
  readonly appends: RequestSize;
  /** The largest of all, in bytes. */
  readonly largest: number;
}

const APPEND_PATHS: ReadonlySet<string> = new Set(["/eventstore.v1.EventStoreService/Append", "/eventstore.v1.EventStoreService/MultiStreamAppend"]);

/**
 * Appends carry up to `maxAppendBytes` of events, plus room for base64 in Connect JSON and for
 * the envelope; every other request names things (a filter is at most 64 KiB by default) or
 * carries a projection's state, and gets `maxRequestBytes`. One limit for all would let a read
 * of 20 MB be read and decoded before its filter is found too large: 11 such reads at once
 * held the event loop for a second.
 */
export function requestSizeLimits(limits: Limits, maxRequestBytes: number): RequestSizeLimits {
  const appends: RequestSize = { maxBytes: Math.min(MAX_MESSAGE_BYTES, Math.ceil(limits.maxAppendBytes * 1.4) + 1024 * 1024), setting: "max-append-bytes" };
  const others: RequestSize = { maxBytes: maxRequestBytes, setting: "max-request-bytes" };
  return {
    of: (path) => (APPEND_PATHS.has(path) ? appends : others),
    appends,
    largest: Math.max(appends.maxBytes, others.maxBytes),
  };
}

/** The largest message length a gRPC envelope can state (and Connect accepts as readMaxBytes). */
export const MAX_MESSAGE_BYTES = 0xffffffff;

/**
 * The least `maxRequestBytes` that holds the largest request the other limits allow, in Connect
 * JSON, where any character may be escaped as `\uXXXX` (6 bytes a UTF-16 unit; Python's
 * json.dumps escapes every non-ASCII one): a projection persist (its state in base64, its
 * stream map of names of up to 256 units), and a filter (its bytes, escaped, and its terms).
 */
export function leastRequestBytes(limits: Pick<Limits, "maxProjectionStateBytes" | "maxProjectionStreams" | "maxFilterBytes" | "maxFilterTerms">): number {
  const persist = Math.ceil(limits.maxProjectionStateBytes / 3) * 4 + limits.maxProjectionStreams * (256 * 6 + 64);
  const filter = limits.maxFilterBytes * 6 + limits.maxFilterTerms * 64;
  return Math.max(persist, filter) + 64 * 1024;
}

/**
 * A router that registers each method with its own read limit, so that Connect, too, refuses a
 * request (a compressed one, whose size shows only as it is inflated) past its method's limit.
 */
export function withRequestSizeLimits(router: ConnectRouter, sizes: RequestSizeLimits): ConnectRouter {
  const wrapped: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service, implementation, options) {
      const spec = createServiceImplSpec(service, implementation);
      for (const m of Object.values(spec.methods)) {
        router.rpc(m.method, m.impl as never, { ...options, readMaxBytes: sizes.of(`/${service.typeName}/${m.method.name}`).maxBytes });
      }
      return wrapped;
    },
    rpc(method, impl, options) {
      router.rpc(method, impl, { ...options, readMaxBytes: sizes.of(`/${method.parent.typeName}/${method.name}`).maxBytes });
      return wrapped;
    },
  };
  return wrapped;
}

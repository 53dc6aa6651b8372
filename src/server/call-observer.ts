import { randomUUID } from "node:crypto";
import type { Http2ServerResponse } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, createContextValues, type Code, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { CALL_RECORD, type CallRecord } from "../api/call-record";
import type { Logger } from "../domain";
import type { Metrics } from "../metrics";
import type { RequestHandler } from "./listen";
import { onResponseHeaders, type Headers } from "./response-headers";

type Request = Parameters<RequestHandler>[0];
type Response = Parameters<RequestHandler>[1];
/** unary, server_streaming, ... */
export type MethodKind = DescMethod["methodKind"];

export interface CallObserverOptions {
  /** Calls and their codes, time and messages. */
  metrics: Metrics;
  /** The services' methods by path, once they are registered. */
  methods: () => ReadonlyMap<string, MethodKind>;
  /** One line per call: info, or warn for a unary call slower than `slowCallMs` (0: never). */
  log: Logger;
  slowCallMs: number;
}

export interface CallObserver {
  /** Counts every call `handler` serves: by method and code, its time and its messages. */
  wrap(handler: RequestHandler): RequestHandler;
  /** The context values of a call that carry its record (given on to `values`). */
  contextValues(req: Request, values?: ContextValues): ContextValues;
  /** The record of a call `wrap` serves. */
  recordOf(req: Request): CallRecord | undefined;
  /** Records the code of a Connect implementation's error and counts its streamed messages. */
  interceptor: Interceptor;
}

/**
 * Observes each call at its edge, whatever served it (Connect, the unary fast path, or a
 * refusal before either): gRPC says how a call ended in its `grpc-status` header or trailer,
 * read here as it is written; the Connect protocol and gRPC-Web say it in the body, so for
 * those the interceptor records the error Connect was given. Methods are the services' paths;
 * any other path counts as "unknown", so that no client can make labels without end.
 *
 * Each call gets a request id, the client's `x-request-id` if it is a sane one, else a new
 * UUID, sent back in the response headers; it and a W3C `traceparent`'s trace id go into the
 * call's log line, which never holds a payload.
 */
export function createCallObserver(options: CallObserverOptions): CallObserver {
  const { metrics, methods, log, slowCallMs } = options;
  const records = new WeakMap<Request, CallRecord>();
  // Each (method, code)'s children, so that a call's counts need no label hashing.
  const children = new Map<string, { calls: { inc(n?: number): void }; duration: { observe(v: number): void } }>();
  const countsOf = (method: string, code: string) => {
    const key = `${method} ${code}`;
    let c = children.get(key);
    if (!c) children.set(key, (c = { calls: metrics.rpc.calls.labels({ method, code }), duration: metrics.rpc.duration.labels({ method, code }) }));
    return c;
  };
  return {
    wrap: (handler) => (req, res) => {
      const start = performance.now();
      const record: CallRecord = { messages: 0 };
      records.set(req, record);
      const requestId = requestIdOf(req.headers["x-request-id"]);
      res.setHeader("x-request-id", requestId);
      // A trailer's status is the call's; a header's only when it is trailers-only.
      let grpcStatus: string | undefined;
      onResponseHeaders(res, (headers, trailers) => {
        const status = statusOf(headers);
        if (trailers) grpcStatus = status ?? grpcStatus;
        else grpcStatus ??= status;
      });
      res.once("close", () => {
        const path = (req.url ?? "").split("?")[0];
        const kind = methods().get(path);
        const method = kind ? path : "unknown";
        const code = grpcStatus !== undefined ? codeName(Number(grpcStatus))
          : record.code !== undefined ? codeName(record.code)
          : !finished(res) ? "CANCELLED"
          : httpCode(res.statusCode);
        const messages = record.messages || (code === "OK" && kind === "unary" ? 1 : 0);
        const ms = performance.now() - start;
        const counts = countsOf(method, code);
        counts.calls.inc();
        counts.duration.observe(ms / 1000);
        if (messages > 0) metrics.rpc.messagesSent.inc({ method }, messages);
        const slow = slowCallMs > 0 && kind === "unary" && ms > slowCallMs;
        (slow ? log.warn : log.info)(slow ? "slow call" : "call", {
          method: method === "unknown" ? path.slice(0, 200) : method,
          code,
          ms: Math.round(ms * 10) / 10,
          requestId,
          ...traceOf(req.headers.traceparent),
          ...(record.principal !== undefined ? { principal: record.principal } : {}),
          messages,
          ...(record.events !== undefined ? { events: record.events } : {}),
          ...(record.bytes !== undefined ? { bytes: record.bytes } : {}),
          protocol: protocolOf(req),
        });
      });
      handler(req, res);
    },
    contextValues(req, values = createContextValues()) {
      const record = records.get(req);
      return record ? values.set(CALL_RECORD, record) : values;
    },
    recordOf: (req) => records.get(req),
    interceptor: (next) => async (req) => {
      const record = req.contextValues.get(CALL_RECORD);
      try {
        const res = await next(req);
        // A unary call's one message is counted when it ends well: only streams are counted here.
        if (!res.stream) return res;
        return { ...res, message: counted(res.message, record) };
      } catch (e) {
        record.code = ConnectError.from(e).code;
        throw e;
      }
    },
  };
}

async function* counted<T>(messages: AsyncIterable<T>, record: CallRecord): AsyncIterable<T> {
  try {
    for await (const m of messages) {
      record.messages++;
      yield m;
    }
  } catch (e) {
    record.code = ConnectError.from(e).code;
    throw e;
  }
}

/** A client's request id, if it is 1 to 128 visible ASCII characters; else a new one. */
function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === "string" && /^[\x21-\x7e]{1,128}$/.test(header) ? header : randomUUID();
}

/** The trace and parent span of a W3C traceparent (version 00), if it is well formed. */
function traceOf(header: string | string[] | undefined): { traceId?: string; spanId?: string } {
  if (typeof header !== "string") return {};
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(header.trim());
  if (!match || /^0+$/.test(match[1]) || /^0+$/.test(match[2])) return {};
  return { traceId: match[1], spanId: match[2] };
}

function protocolOf(req: Request): string {
  const type = req.headers["content-type"] ?? "";
  const kind = type.startsWith("application/grpc-web") ? "grpc-web" : type.startsWith("application/grpc") ? "grpc" : "connect";
  return `${kind} http/${req.httpVersion}`;
}

function statusOf(headers: Headers): string | undefined {
  const status = headers["grpc-status"];
  return status === undefined ? undefined : String(status);
}

function finished(res: Response): boolean {
  return "stream" in res ? !(res as Http2ServerResponse).stream.rstCode && res.writableFinished : res.writableFinished;
}

// gRPC's own spellings (CANCELLED): connect-es's codeToString says "canceled".
const NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** A gRPC status code's canonical name (connect-es's Code has the same numbers). */
export function codeName(code: number | Code): string {
  return NAMES[code] ?? "UNKNOWN";
}

/** A call answered without a gRPC status or a Connect error: by its HTTP status. */
function httpCode(status: number): string {
  if (status >= 200 && status < 300) return "OK";
  return HTTP_CODES[status] ?? (status >= 500 ? "UNKNOWN" : "INVALID_ARGUMENT");
}

const HTTP_CODES: Record<number, string> = {
  400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "UNIMPLEMENTED", 408: "DEADLINE_EXCEEDED",
  409: "ABORTED", 413: "RESOURCE_EXHAUSTED", 415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

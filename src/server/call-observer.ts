import type { Http2ServerResponse } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import { ConnectError, createContextValues, type Code, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { CALL_RECORD, type CallRecord } from "../api/call-record";
import type { Metrics } from "../metrics";
import type { RequestHandler } from "./listen";

type Request = Parameters<RequestHandler>[0];
type Response = Parameters<RequestHandler>[1];
type Headers = Record<string, string | string[] | number | undefined>;
/** unary, server_streaming, ... */
export type MethodKind = DescMethod["methodKind"];

export interface CallObserver {
  /** Counts every call `handler` serves: by method and code, its time and its messages. */
  wrap(handler: RequestHandler): RequestHandler;
  /** The context values of a call that carry its record (given on to `values`). */
  contextValues(req: Request, values?: ContextValues): ContextValues;
  /** Records the code of a Connect implementation's error and counts its streamed messages. */
  interceptor: Interceptor;
}

/**
 * Observes each call at its edge, whatever served it (Connect, the unary fast path, or a
 * refusal before either): gRPC says how a call ended in its `grpc-status` header or trailer,
 * read here as it is written; the Connect protocol and gRPC-Web say it in the body, so for
 * those the interceptor records the error Connect was given. Methods are the services' paths;
 * any other path counts as "unknown", so that no client can make labels without end.
 */
export function createCallObserver(metrics: Metrics, methods: () => ReadonlyMap<string, MethodKind>): CallObserver {
  const records = new WeakMap<Request, CallRecord>();
  return {
    wrap: (handler) => (req, res) => {
      const start = performance.now();
      const record: CallRecord = { messages: 0 };
      records.set(req, record);
      let grpcStatus: string | undefined;
      const writeHead = res.writeHead;
      const addTrailers = res.addTrailers;
      res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
        const headers = rest[rest.length - 1];
        if (headers && typeof headers === "object" && !Array.isArray(headers)) grpcStatus ??= statusOf(headers as Headers);
        return (writeHead as (...a: unknown[]) => Response).call(this, status, ...rest);
      } as typeof res.writeHead;
      res.addTrailers = function (this: Response, headers: Headers) {
        grpcStatus = statusOf(headers) ?? grpcStatus;
        return (addTrailers as (h: Headers) => void).call(this, headers);
      } as typeof res.addTrailers;
      res.once("close", () => {
        const path = (req.url ?? "").split("?")[0];
        const kind = methods().get(path);
        const method = kind ? path : "unknown";
        const code = grpcStatus !== undefined ? codeName(Number(grpcStatus))
          : record.code !== undefined ? codeName(record.code)
          : !finished(res) ? "CANCELLED"
          : httpCode(res.statusCode);
        const messages = record.messages || (code === "OK" && kind === "unary" ? 1 : 0);
        metrics.rpc.calls.inc({ method, code });
        metrics.rpc.duration.observe({ method, code }, (performance.now() - start) / 1000);
        if (messages > 0) metrics.rpc.messagesSent.inc({ method }, messages);
      });
      handler(req, res);
    },
    contextValues(req, values = createContextValues()) {
      const record = records.get(req);
      return record ? values.set(CALL_RECORD, record) : values;
    },
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

function statusOf(headers: Headers): string | undefined {
  const status = headers["grpc-status"];
  return status === undefined ? undefined : String(status);
}

function finished(res: Response): boolean {
  return "stream" in res ? !(res as Http2ServerResponse).stream.rstCode && res.writableFinished : res.writableFinished;
}

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

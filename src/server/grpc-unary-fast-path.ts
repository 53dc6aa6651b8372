import { constants, type Http2ServerRequest, type Http2ServerResponse, type OutgoingHttpHeaders } from "node:http2";
import {
  create,
  fromBinary,
  isMessage,
  toBinary,
  type DescMessage,
  type DescMethod,
  type DescMethodUnary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, createServiceImplSpec, type ConnectRouter, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import { parseTimeout } from "@connectrpc/connect/protocol-grpc";
import type { Logger } from "../domain";
import { envelope, errorTrailers, headerObject, OK_TRAILERS, readMessage } from "./grpc-unary-wire";
import { closeUnfinishedRequest } from "./request-body-timeout";
import type { RequestBudget } from "./request-budget";
import type { RequestHandler } from "./listen";
import type { RequestSize, RequestSizeLimits } from "./request-size-limits";
import { UnaryCallContext } from "./unary-call-context";

type UnaryImpl = (request: unknown, context: HandlerContext) => Promise<unknown> | unknown;

interface UnaryRoute {
  method: DescMethodUnary;
  impl: UnaryImpl;
  /** A decoder of the method's request faster than protobuf-es's; undefined when it gives up. */
  decode?: RequestDecoder;
  /** The most bytes of its request message. */
  size: RequestSize;
}

/** Decodes a request as protobuf-es would, or answers undefined to leave it to protobuf-es. */
export type RequestDecoder = (bytes: Uint8Array) => Message | undefined;

export interface GrpcUnaryFastPathOptions {
  /** Requests larger than their method's size are refused with RESOURCE_EXHAUSTED, as Connect refuses them. */
  sizes: RequestSizeLimits;
  /** A request whose message has not arrived whole this long after its headers is refused; 0: never. */
  requestBodyTimeoutMs?: number;
  /** The server's budget of request bytes still arriving, which each call's message is read within. */
  budget?: RequestBudget;
  /** Aborts every call's signal when the server shuts down. */
  shutdown: AbortSignal;
  log: Logger;
  /** Hand-written decoders of some request messages, by their type name. */
  decoders?: Record<string, RequestDecoder>;
  /** The context values of each call (the caller, say), as connectNodeAdapter's option of that name. */
  contextValues?: (req: Http2ServerRequest) => ContextValues;
}

export interface GrpcUnaryFastPath {
  /** A router that registers every service with `router` and its unary methods here too. */
  wrap(router: ConnectRouter): ConnectRouter;
  /** Answers the request if it is a plain gRPC unary call over HTTP/2 to a known method; else false. */
  serve: (req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]) => boolean;
}

const RESPONSE_HEADERS = { "content-type": "application/grpc+proto" };
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Serves unary gRPC calls (the common case: binary protobuf over HTTP/2, uncompressed) without
 * Connect's general machinery, with the same service implementations. Connect serves a
 * `Health/Check` from 32 grpc-js clients at about 2,800 calls/s here, spending most of a core on
 * per-call async iterables, abort signals and header objects, where node:http2 alone answers
 * 8,000: for single-event appends that per-call cost was the server's largest, above the
 * database's.
 * Everything else (streaming methods, gRPC-Web, Connect JSON, HTTP/1.1, compressed requests,
 * `application/grpc+json`) still goes to Connect. Errors are written as Connect writes them
 * (status, message, details), with the message encoded as the gRPC spec says.
 */
export function createGrpcUnaryFastPath(options: GrpcUnaryFastPathOptions): GrpcUnaryFastPath {
  const routes = new Map<string, UnaryRoute>();
  const inFlight = new Set<UnaryCallContext>();
  options.shutdown.addEventListener("abort", () => {
    for (const context of inFlight) context.abort(shutdownReason(options.shutdown));
  });

  function add(method: DescMethod, impl: UnaryImpl): void {
    if (method.methodKind !== "unary") return;
    const decode = options.decoders?.[method.input.typeName];
    const path = `/${method.parent.typeName}/${method.name}`;
    routes.set(path, { method: method as DescMethodUnary, impl, decode, size: options.sizes.of(path) });
  }

  return {
    wrap(router) {
      const wrapped: ConnectRouter = {
        get handlers() {
          return router.handlers;
        },
        // Methods with interceptors stay with Connect, which runs them. (Interceptors given to
        // connectNodeAdapter itself are not seen here: the server gives none. Its context values
        // must be given here too.)
        service(service, implementation, handlerOptions) {
          router.service(service, implementation, handlerOptions);
          if (handlerOptions?.interceptors?.length) return wrapped;
          const spec = createServiceImplSpec(service, implementation);
          for (const m of Object.values(spec.methods)) add(m.method, m.impl as UnaryImpl);
          return wrapped;
        },
        rpc(method, impl, handlerOptions) {
          router.rpc(method, impl, handlerOptions);
          if (!handlerOptions?.interceptors?.length) add(method, impl as UnaryImpl);
          return wrapped;
        },
      };
      return wrapped;
    },

    serve(req, res) {
      if (req.httpVersionMajor !== 2 || req.method !== "POST") return false;
      const route = routes.get(req.url ?? "");
      if (!route) return false;
      const contentType = req.headers["content-type"];
      if (contentType !== "application/grpc" && contentType !== "application/grpc+proto") return false;
      const encoding = req.headers["grpc-encoding"];
      if (encoding !== undefined && encoding !== "identity") return false;
      const response = res as Http2ServerResponse;
      call(route, req as Http2ServerRequest, response, options, inFlight).catch((e) => {
        // Writing the answer failed (a header Node refuses, say): the call ends with a reset.
        options.log.error("a unary call could not be answered", { path: req.url, cause: e instanceof Error ? e.message : String(e) });
        if (!response.stream.closed) response.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      });
      return true;
    },
  };
}

async function call(
  route: UnaryRoute,
  req: Http2ServerRequest,
  res: Http2ServerResponse,
  options: GrpcUnaryFastPathOptions,
  inFlight: Set<UnaryCallContext>,
): Promise<void> {
  const arrived = Date.now();
  let context: UnaryCallContext | undefined;
  let answered = false;
  const hold = options.budget?.open();
  const onClose = () => {
    hold?.close();
    if (!answered) context?.abort(new ConnectError("the client cancelled the call", Code.Canceled));
  };
  res.once("close", onClose);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = parseTimeout(headerValue(req.headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    if (timeout.error) throw timeout.error;
    const deadline = timeout.timeoutMs === undefined ? undefined : arrived + timeout.timeoutMs;
    const bytes = await readMessage(req, route.size, options.requestBodyTimeoutMs, hold);
    // A client that is gone, or a deadline that has passed, before the call begins: nothing runs.
    // (A reset stream ends the request's body as if it were complete, before "close".)
    if (req.aborted || res.stream.closed) return;
    if (deadline !== undefined && Date.now() >= deadline) throw new ConnectError("the operation timed out", Code.DeadlineExceeded);
    const request = parse(route, bytes);
    // Parsed: no longer a request arriving, whatever the call does with it next.
    hold?.close();
    const ctx = (context = new UnaryCallContext(route.method, req, deadline, options.contextValues));
    inFlight.add(ctx);
    if (options.shutdown.aborted) ctx.abort(shutdownReason(options.shutdown));
    // As in Connect, a deadline that passes aborts the call's signal, and the answer is still
    // the implementation's: an append it had begun may have committed. (A timer cannot wait
    // longer than 2^31 - 1 ms: such a deadline is as good as none.)
    const ms = deadline === undefined ? undefined : deadline - Date.now();
    if (ms !== undefined && ms <= MAX_TIMER_MS) {
      timer = setTimeout(() => ctx.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), ms);
    }
    // Implementations may answer a message or the plain object a message is made from.
    const output = (await route.impl(request, ctx)) as MessageInitShape<DescMessage>;
    const response = toBinary(route.method.output, isMessage(output, route.method.output) ? output : create(route.method.output, output));
    answered = true;
    respond(res, ctx, OK_TRAILERS, envelope(response));
  } catch (e) {
    answered = true;
    respond(res, context, errorTrailers(e));
    // Refused before its body was read whole (too large, too slow, past the budget): the rest is not wanted.
    if (!req.readableEnded && !res.stream.closed) closeUnfinishedRequest(res);
  } finally {
    hold?.close();
    if (timer) clearTimeout(timer);
    if (context) inFlight.delete(context);
    res.off("close", onClose);
  }
}

/**
 * Writes the answer, unless the stream is gone: the protocol's headers and trailers over any the
 * implementation set, and the message, if there is one.
 */
function respond(res: Http2ServerResponse, context: UnaryCallContext | undefined, trailers: OutgoingHttpHeaders, message?: Buffer): void {
  if (res.stream.closed) return;
  const { header, trailer } = context?.responseMetadata ?? {};
  res.writeHead(200, header ? { ...headerObject(header), ...RESPONSE_HEADERS } : RESPONSE_HEADERS);
  res.addTrailers(trailer ? { ...headerObject(trailer), ...trailers } : trailers);
  if (message) res.end(message);
  else res.end();
}

function parse(route: UnaryRoute, bytes: Uint8Array): Message {
  try {
    return route.decode?.(bytes) ?? fromBinary(route.method.input, bytes);
  } catch (e) {
    // A decoder's own answer (a limit its wire check found) stands.
    if (e instanceof ConnectError) throw e;
    // In Connect's words, but the client's mistake: INVALID_ARGUMENT (Connect says INTERNAL; see grpc-message-encoding.ts).
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.InvalidArgument);
  }
}

/** Why calls end when the server shuts down: UNAVAILABLE, so that clients go elsewhere. */
function shutdownReason(signal: AbortSignal): ConnectError {
  return signal.reason instanceof ConnectError ? signal.reason : new ConnectError("the server is shutting down", Code.Unavailable);
}

function headerValue(value: string | string[] | undefined): string | null {
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

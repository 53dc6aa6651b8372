import type { ServerResponse } from "node:http";
import { constants, type Http2ServerResponse } from "node:http2";
import type { Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { ERROR_DOMAIN } from "../api/connect-error";
import type { RequestHandler } from "./listen";
import { methodPath } from "./method-path";

export interface RequestBodyTimeoutOptions {
  /** Most time from a request's headers to the end of its body; 0: none. */
  timeoutMs: number;
  /** Whether the method at `path` takes a stream of messages (client or bidi streaming): never timed. */
  takesStream(path: string): boolean;
}

/**
 * The answer to a request whose message did not arrive in time: RESOURCE_EXHAUSTED, as every
 * other limit answers, with an ErrorInfo naming it. Not DEADLINE_EXCEEDED, which says the
 * client's own deadline passed (grpc-js makes that status itself and may retry on it), nor
 * CANCELLED, which says someone gave the call up: the server ran out of patience, a limit.
 */
export function requestBodyTimedOut(timeoutMs: number): ConnectError {
  return new ConnectError(
    `request: the request message did not arrive within ${timeoutMs} ms (--request-body-timeout-ms)`,
    Code.ResourceExhausted,
    undefined,
    [
      {
        desc: ErrorInfoSchema,
        value: { reason: "LIMIT_EXCEEDED", domain: ERROR_DOMAIN, metadata: { field: "request", limit: String(timeoutMs), setting: "request-body-timeout-ms" } },
      },
    ],
  );
}

/** How long after the timeout a handler may take to answer it before the call is cut. */
const UNANSWERED_MS = 1000;
/** How long a refused HTTP/1.1 request's connection reads (and drops) what still comes after its answer. */
const LINGER_MS = 1000;
/** How often, and how many times, to look whether an answer has left before resetting its stream. */
const SENT_POLL_MS = 10;
const SENT_POLLS = 200;

/**
 * Once the answer is out, tells an HTTP/2 client to stop sending the rest of its request, as
 * RFC 9113 (8.1) has it: RST_STREAM with NO_ERROR after a complete response. Without it the
 * stream stays half open, its bytes are read and dropped, and it keeps its place among the
 * connection's concurrent streams.
 *
 * "Out" is the stream's local side closed (END_STREAM sent): neither the response's nor the
 * stream's "finish" says so, and a reset queued before the trailers overtakes them, which
 * would leave the client without a status. An answer that has not left after two seconds (a
 * client that grants no flow-control window) is reset all the same.
 */
export function closeUnfinishedRequest(res: Http2ServerResponse): void {
  const stream = res.stream;
  let polls = 0;
  const closeOnceSent = () => {
    if (stream.closed || stream.destroyed) return;
    if (stream.state.localClose || ++polls > SENT_POLLS) stream.close(constants.NGHTTP2_NO_ERROR);
    else setTimeout(closeOnceSent, SENT_POLL_MS).unref();
  };
  closeOnceSent();
}

/**
 * After a handler (Connect) was given an error instead of the rest of a request's body, so that
 * it answers the error in the call's protocol: refuses the rest. An HTTP/2 stream is reset
 * (NO_ERROR) once the answer is out; an HTTP/1.1 connection is closed after the answer (its
 * unread body cannot be skipped), lingering (below). A handler that swallows the failed read and
 * never answers must not keep the call: it is cut a second later (grpc-js reads
 * ENHANCE_YOUR_CALM as RESOURCE_EXHAUSTED).
 */
export function refuseRestOfRequest(req: Parameters<RequestHandler>[0], res: Parameters<RequestHandler>[1]): void {
  if ("stream" in res) closeUnfinishedRequest(res);
  else closeAfterAnswerLingering(req.socket, res as ServerResponse);
  setTimeout(() => {
    if (res.headersSent) return;
    if ("stream" in res) res.stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    else req.socket.destroy();
  }, UNANSWERED_MS).unref();
}

/**
 * An HTTP/1.1 connection that may not be kept alive is closed by Node with destroySoon() once its
 * answer is written. With the refused body still arriving, the kernel then meets that data with
 * an RST, which may reach the client before it has read the answer: it sees ECONNRESET, not the
 * error (a test sending 5 MiB with a Content-Length hung that way in two runs of three). So the
 * connection ends its sending side instead, reads and drops what still comes for LINGER_MS,
 * and only then closes: a web server's lingering close. Node's parser drops the body's bytes.
 */
function closeAfterAnswerLingering(socket: Socket, res: ServerResponse): void {
  res.shouldKeepAlive = false;
  socket.destroySoon = () => {
    socket.end();
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  };
}

/**
 * Serves requests with `handler` (Connect), ending those whose body does not arrive within the
 * timeout: the handler's read of the body fails with `requestBodyTimedOut`, so it answers that
 * error in whatever protocol the client speaks (gRPC, gRPC-Web, Connect), and what it gathered is
 * dropped. Then the rest of the request is refused: an HTTP/2 stream is reset (NO_ERROR), an
 * HTTP/1.1 connection is closed after the answer (its unread body cannot be skipped).
 */
export function withRequestBodyTimeout(handler: RequestHandler, options: RequestBodyTimeoutOptions): RequestHandler {
  if (options.timeoutMs <= 0) return handler;
  return (req, res) => {
    if (req.readableEnded || options.takesStream(methodPath(req.url))) return handler(req, res);
    let expire!: (error: ConnectError) => void;
    const expired = new Promise<never>((_, reject) => (expire = reject));
    expired.catch(() => {}); // read by the handler, if it reads at all
    const timer = setTimeout(() => {
      expire(requestBodyTimedOut(options.timeoutMs));
      refuseRestOfRequest(req, res);
    }, options.timeoutMs);
    const done = () => clearTimeout(timer);
    req.once("end", done);
    res.once("close", done);
    const chunks = req[Symbol.asyncIterator].bind(req);
    // Connect reads a request body by iterating it; a read that outlives the timeout fails.
    req[Symbol.asyncIterator] = () => {
      const inner = chunks();
      return {
        next: () => Promise.race([inner.next(), expired]),
        return: (value?: unknown) => inner.return!(value),
        [Symbol.asyncIterator]() {
          return this;
        },
      } as ReturnType<typeof chunks>;
    };
    handler(req, res);
  };
}

/** The request paths of the methods among `handlers` whose client sends a stream of messages. */
export function requestStreamPaths(handlers: readonly UniversalHandler[]): Set<string> {
  return new Set(
    handlers.filter((h) => h.method.methodKind === "client_streaming" || h.method.methodKind === "bidi_streaming").map((h) => h.requestPath),
  );
}

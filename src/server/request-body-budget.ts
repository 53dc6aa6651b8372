import type { ConnectError } from "@connectrpc/connect";
import type { RequestHandler } from "./listen";
import { methodPath } from "./method-path";
import { refuseRestOfRequest } from "./request-body-timeout";
import type { RequestSize, RequestSizeLimits } from "./request-size-limits";
import { CHUNK_OVERHEAD_BYTES, messageTooLarge, requestBudgetExceeded, type RequestBudget, type RequestBudgetHold } from "./request-budget";

export interface RequestBodyBudgetOptions {
  budget: RequestBudget;
  /** The largest message of each method. */
  sizes: RequestSizeLimits;
  /** Whether the method at `path` takes a stream of messages (client or bidi streaming). */
  takesStream(path: string): boolean;
}

const ENVELOPE = 5;

/**
 * Serves requests with `handler` (Connect), counting what Connect buffers of each request body
 * against the server's budget, as Connect (or the append check in front of it) reads the body.
 * Connect gathers a unary body whole before it parses it, and each message of a stream whole
 * before it parses that; it also allocates at once the size that a Connect body's
 * Content-Length, or a message's envelope, says: 500 calls that each said 20 MiB and sent 1 MiB
 * had it allocate 10 GB, which stalled the event loop for 3 s. So Connect is not shown the
 * Content-Length (it then gathers the chunks that come), which is checked here instead, and a
 * message's size is taken from the budget when its envelope is read; other bytes are taken as
 * they arrive.
 *
 * What does not fit fails the read, so Connect answers RESOURCE_EXHAUSTED in the call's
 * protocol, and the rest of the request is refused as the body timeout refuses it. A body's
 * bytes are given back when its last chunk has been handed on (Connect parses it then) or the
 * call ends, whichever comes first; in a stream of messages, each message's bytes when Connect
 * asks for the chunk after it, having parsed it, so that a long stream holds only the message
 * it is receiving.
 */
export function withRequestBodyBudget(handler: RequestHandler, options: RequestBodyBudgetOptions): RequestHandler {
  return (req, res) => {
    if (req.readableEnded) return handler(req, res);
    const hold = options.budget.open();
    const path = methodPath(req.url);
    const size = options.sizes.of(path);
    res.once("close", () => hold.close());
    let body: CountedBody;
    if (isEnveloped(req.headers["content-type"])) body = createEnvelopedBody(hold, size);
    else {
      body = createPlainBody(hold, size, options.takesStream(path) ? undefined : req.headers["content-length"]);
      // Node has framed the body by it already; Connect would only allocate it.
      delete req.headers["content-length"];
    }
    let refusal: ConnectError | undefined;
    const refuse = (error: ConnectError): never => {
      if (!refusal) {
        refusal = error;
        hold.close();
        refuseRestOfRequest(req, res);
      }
      throw refusal;
    };
    const chunks = req[Symbol.asyncIterator].bind(req);
    req[Symbol.asyncIterator] = () => {
      const inner = chunks();
      return {
        async next() {
          if (refusal) refuse(refusal);
          const early = body.start();
          if (early) refuse(early);
          hold.keep(body.unfinishedCost);
          const next = await inner.next();
          if (next.done) {
            hold.close();
            return next;
          }
          const error = body.advance(next.value as Buffer);
          if (error) refuse(error);
          return next;
        },
        return(value?: unknown) {
          hold.close();
          return inner.return!(value);
        },
        [Symbol.asyncIterator]() {
          return this;
        },
      } as ReturnType<typeof chunks>;
    };
    handler(req, res);
  };
}

/** How a body's bytes are counted as they are read. */
interface CountedBody {
  /** Before the first chunk is read: the refusal of a body that says it is too large, or will not fit. */
  start(): ConnectError | undefined;
  /** Counts `chunk`; the refusal of what it takes past the method's size or the budget. */
  advance(chunk: Buffer): ConnectError | undefined;
  /** What the hold must keep while the next chunk is awaited: all but the messages parsed. */
  readonly unfinishedCost: number;
}

/** gRPC, gRPC-Web and Connect streaming frame messages in 5-byte envelopes; Connect unary does not. */
function isEnveloped(contentType: string | undefined): boolean {
  const type = contentType?.split(";", 1)[0].trim().toLowerCase() ?? "";
  return type.startsWith("application/grpc") || type.startsWith("application/connect+");
}

/**
 * A Connect unary body (JSON or binary): one message, parsed when it is whole. One whose
 * Content-Length says it is too large, or will not fit in what is left, is refused before its
 * first byte is read.
 */
function createPlainBody(hold: RequestBudgetHold, size: RequestSize, contentLength: string | undefined): CountedBody {
  let declared = contentLength !== undefined && /^\d+$/.test(contentLength) ? Number(contentLength) : undefined;
  let read = 0;
  return {
    start() {
      if (declared === undefined) return undefined;
      const length = declared;
      declared = undefined;
      if (length > size.maxBytes) return messageTooLarge(length, size);
      if (length > hold.budget.availableBytes) return requestBudgetExceeded(hold.budget.maxBytes, length);
      return undefined;
    },
    advance(chunk) {
      // A body sent without a length is gathered up to the limit, not past it.
      if ((read += chunk.byteLength) > size.maxBytes) return messageTooLarge(read, size);
      return hold.takeChunk(chunk.byteLength) ? undefined : requestBudgetExceeded(hold.budget.maxBytes, hold.bytes + chunk.byteLength);
    },
    get unfinishedCost() {
      return hold.bytes;
    },
  };
}

/**
 * A body of enveloped messages, followed through their envelopes: each message's size is taken
 * when its envelope arrives (Connect allocates it then), its bytes then arrive taken already.
 */
function createEnvelopedBody(hold: RequestBudgetHold, size: RequestSize): CountedBody {
  const head = Buffer.alloc(ENVELOPE);
  let headBytes = 0;
  /** Bytes of the current message's data still to come, once its envelope is whole; -1 before. */
  let dataToCome = -1;
  /** What the message arriving has cost the hold so far, beyond the part of it still to come. */
  let cost = 0;
  const exceeded = (size: number) => requestBudgetExceeded(hold.budget.maxBytes, size);
  return {
    start: () => undefined,
    get unfinishedCost() {
      return cost + Math.max(0, dataToCome);
    },
    advance(chunk) {
      const covered = Math.min(Math.max(0, dataToCome), chunk.byteLength);
      if (!hold.takeChunk(chunk.byteLength - covered)) return exceeded(hold.bytes + chunk.byteLength);
      // A chunk that holds the end of a message and the start of the next is held by both
      // (Connect keeps the rest as a view of it): each counts its overhead.
      cost += CHUNK_OVERHEAD_BYTES;
      for (let at = 0; at < chunk.byteLength; ) {
        if (dataToCome < 0) {
          const n = Math.min(ENVELOPE - headBytes, chunk.byteLength - at);
          chunk.copy(head, headBytes, at, at + n);
          headBytes += n;
          at += n;
          cost += n;
          if (headBytes < ENVELOPE) break;
          headBytes = 0;
          dataToCome = head.readUInt32BE(1);
          if (dataToCome > size.maxBytes) return messageTooLarge(dataToCome, size);
          // What has not come with this chunk is taken now, before Connect allocates it.
          if (!hold.take(dataToCome - Math.min(dataToCome, chunk.byteLength - at))) return exceeded(ENVELOPE + dataToCome);
        }
        const n = Math.min(dataToCome, chunk.byteLength - at);
        dataToCome -= n;
        at += n;
        cost += n;
        if (dataToCome === 0) {
          dataToCome = -1;
          cost = at < chunk.byteLength ? CHUNK_OVERHEAD_BYTES : 0;
        }
      }
      return undefined;
    },
  };
}

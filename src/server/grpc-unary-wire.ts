import type { Http2ServerRequest, OutgoingHttpHeaders } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { encodeGrpcMessage } from "./grpc-message-encoding";
import { requestBodyTimedOut } from "./request-body-timeout";
import type { RequestSize } from "./request-size-limits";
import { messageTooLarge, requestBudgetExceeded, type RequestBudgetHold } from "./request-budget";

// The gRPC wire format of a unary call: one length-prefixed message each way, the status in
// trailers. Errors and their wording are Connect's, so that a client sees the same whichever
// path served it.

const ENVELOPE = 5;
const FLAG_COMPRESSED = 0b1;

/**
 * Reads a unary request's one message. A message that says it is larger than `limit`,
 * or than what is left of the server's request budget, is refused as soon as its envelope
 * arrives, before its bytes are gathered; one whose next chunk would take the server past its
 * budget is refused then; one that has not arrived whole within `timeoutMs` (0: no limit) is
 * refused then. A refused message's bytes are let go, and given back to the budget at once;
 * those of a message read stay in `hold` until the caller has parsed them.
 */
export function readMessage(req: Http2ServerRequest, limit: RequestSize, timeoutMs = 0, hold?: RequestBudgetHold): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let size = 0;
    let declared = -1;
    const timer = timeoutMs > 0 ? setTimeout(() => refuse(requestBodyTimedOut(timeoutMs)), timeoutMs) : undefined;
    const refuse = (error: ConnectError) => {
      clearTimeout(timer);
      req.removeListener("data", onData);
      req.removeListener("end", onEnd);
      chunks = [];
      hold?.close();
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      if (hold && !hold.takeChunk(chunk.byteLength)) {
        refuse(requestBudgetExceeded(hold.budget.maxBytes, size + chunk.byteLength));
        return;
      }
      chunks.push(chunk);
      size += chunk.byteLength;
      if (declared < 0 && size >= ENVELOPE) {
        const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
        declared = head.readUInt32BE(1);
        if (declared > limit.maxBytes) {
          refuse(messageTooLarge(declared, limit));
          return;
        }
        // Bytes it has yet to send that the budget could not hold: refused now, not 20 MiB later.
        if (hold && ENVELOPE + declared - size > hold.budget.availableBytes) {
          refuse(requestBudgetExceeded(hold.budget.maxBytes, ENVELOPE + declared));
          return;
        }
      }
      // A second envelope's header: a second message, which a unary call may not send. Fewer
      // bytes than a header are left for unwrap() to call an incomplete envelope.
      if (declared >= 0 && size - (ENVELOPE + declared) >= ENVELOPE) {
        refuse(new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented));
      }
    };
    const onEnd = () => {
      clearTimeout(timer);
      try {
        resolve(unwrap(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
      } catch (e) {
        reject(e);
      }
    };
    // No "error" listener: the compatibility layer does not forward stream errors to the
    // request; a reset stream ends its body instead, which the caller checks for.
    req.on("data", onData);
    req.once("end", onEnd);
  });
}

function unwrap(body: Buffer): Uint8Array {
  if (body.byteLength === 0) throw new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented);
  if (body.byteLength < ENVELOPE) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (body[0] & FLAG_COMPRESSED) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.InvalidArgument);
  }
  const end = ENVELOPE + body.readUInt32BE(1);
  if (end > body.byteLength) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  if (end < body.byteLength) {
    throw body.byteLength - end < ENVELOPE
      ? new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument)
      : new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
  }
  return body.subarray(ENVELOPE, end);
}

/** A message in its envelope, ready to write. */
export function envelope(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ENVELOPE + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, ENVELOPE);
  return out;
}

export const OK_TRAILERS: OutgoingHttpHeaders = { "grpc-status": "0" };

/** The trailers that carry an error: status, message (as the spec encodes it) and details. */
export function errorTrailers(e: unknown): OutgoingHttpHeaders {
  const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  try {
    const trailers = headerObject(setTrailerStatus(new Headers(), error));
    trailers["grpc-message"] = encodeGrpcMessage(error.rawMessage);
    return trailers;
  } catch {
    // An error whose message or metadata cannot be written (a lone surrogate, say) still ends the call.
    return { "grpc-status": String(Code.Internal), "grpc-message": "internal error" };
  }
}

export function headerObject(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, key) => (out[key] = value));
  return out;
}

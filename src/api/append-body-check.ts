import { promisify } from "node:util";
import { brotliDecompress, gunzip, type InputType, type ZlibOptions } from "node:zlib";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import { AppendRequestSchema, MultiStreamAppendRequestSchema } from "../../gen/eventstore/v1/eventstore_pb";
import type { Limits, Logger } from "../domain";
import { scanAppendRequestJson, scanMultiStreamAppendRequestJson } from "./append-json-scan";
import { scanAppendRequest, scanMultiStreamAppendRequest } from "./append-wire-scan";
import { toConnectError } from "./connect-error";

type Scan = (bytes: Uint8Array, limits: Limits) => void;

const SCANS: Record<string, { binary: Scan; json: Scan }> = {
  [AppendRequestSchema.typeName]: { binary: scanAppendRequest, json: scanAppendRequestJson },
  [MultiStreamAppendRequestSchema.typeName]: { binary: scanMultiStreamAppendRequest, json: scanMultiStreamAppendRequestJson },
};

export interface AppendBodyCheckOptions {
  limits: Limits;
  log: Logger;
  /** Connect's readMaxBytes: a body larger than this is left to Connect, which refuses it. */
  readMaxBytes: number;
}

/**
 * Puts the append limits' wire check in front of Connect's handlers of the append methods, for
 * every protocol the unary fast path leaves to Connect (gRPC-Web, Connect, gRPC+JSON, compressed
 * gRPC): the body is gathered (as Connect would gather it, up to readMaxBytes), decompressed if
 * it is, and scanned before Connect parses it. A limit passed becomes the body's read error, so
 * Connect answers it in the call's own protocol, as any error; a body that passes goes on as it
 * is, decompressed. Connect offers no hook between reading a body and parsing it, so the
 * handlers are replaced in the router's list, before connectNodeAdapter maps their paths.
 */
export function checkAppendBodies(handlers: UniversalHandler[], options: AppendBodyCheckOptions): void {
  for (let i = 0; i < handlers.length; i++) {
    const handler = handlers[i];
    const scans = SCANS[handler.method.input.typeName];
    if (scans) handlers[i] = Object.assign(checked(handler, scans, options), handler);
  }
}

interface Framing {
  /** gRPC and gRPC-Web: one message in a 5-byte envelope; Connect unary: the body is the message. */
  enveloped: boolean;
  json: boolean;
  /** The header that names the compression. */
  encodingHeader: string;
}

function framingOf(contentType: string | null): Framing | undefined {
  const type = contentType?.split(";", 1)[0].trim().toLowerCase();
  switch (type) {
    case "application/grpc":
    case "application/grpc+proto":
    case "application/grpc-web":
    case "application/grpc-web+proto":
      return { enveloped: true, json: false, encodingHeader: "grpc-encoding" };
    case "application/grpc+json":
    case "application/grpc-web+json":
      return { enveloped: true, json: true, encodingHeader: "grpc-encoding" };
    case "application/proto":
      return { enveloped: false, json: false, encodingHeader: "content-encoding" };
    case "application/json":
      return { enveloped: false, json: true, encodingHeader: "content-encoding" };
  }
  return undefined;
}

function checked(handler: UniversalHandler, scans: { binary: Scan; json: Scan }, options: AppendBodyCheckOptions) {
  return async (req: UniversalServerRequest) => {
    const framing = framingOf(req.header.get("content-type"));
    const body = req.body;
    if (!framing || !isAsyncIterable(body)) return handler(req);
    const it = body[Symbol.asyncIterator]();
    let gathered: Awaited<ReturnType<typeof gather>>;
    try {
      gathered = await gather(it, options.readMaxBytes + 5);
    } catch (e) {
      // The body could not be read (too slow, past the server's request budget, cut off): Connect
      // answers that, as it would had it read the body itself; a throw here would leave the call unanswered.
      return handler({ ...req, body: failing(e instanceof Error ? e : new Error(String(e))) });
    }
    if (!gathered.complete) return handler({ ...req, body: replay(gathered.chunks, it) });
    const raw = Buffer.concat(gathered.chunks);
    const unwrapped = await unwrap(raw, framing, req.header.get(framing.encodingHeader), options.readMaxBytes);
    // Not one message, or not one this server can decompress: Connect answers for it.
    if (!unwrapped) return handler({ ...req, body: replay([raw]) });
    const { message, decompressed } = unwrapped;
    try {
      (framing.json ? scans.json : scans.binary)(message, options.limits);
    } catch (e) {
      return handler({ ...req, body: failing(toConnectError(e, options.log)) });
    }
    if (!decompressed) return handler({ ...req, body: replay([raw]) });
    // Decompressed once: Connect is given the plain message, and told so.
    if (framing.enveloped) return handler({ ...req, body: replay([envelope(message)]) });
    const header = new Headers(req.header);
    header.delete("content-encoding");
    header.delete("content-length");
    return handler({ ...req, header, body: replay([message]) });
  };
}

/** The body's chunks, up to `max` bytes; not complete if there was more. */
async function gather(it: AsyncIterator<Uint8Array>, max: number): Promise<{ chunks: Uint8Array[]; complete: boolean }> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const next = await it.next();
    if (next.done) return { chunks, complete: true };
    chunks.push(next.value);
    size += next.value.byteLength;
    if (size > max) return { chunks, complete: false };
  }
}

/** The one message of a unary body, decompressed; undefined if it is anything else. */
async function unwrap(
  raw: Buffer,
  framing: Framing,
  encoding: string | null,
  readMaxBytes: number,
): Promise<{ message: Uint8Array; decompressed: boolean } | undefined> {
  let message: Uint8Array = raw;
  let compressed = encoding !== null && encoding !== "identity";
  if (framing.enveloped) {
    if (raw.byteLength < 5 || raw.readUInt32BE(1) !== raw.byteLength - 5 || (raw[0] & ~1) !== 0) return undefined;
    compressed = (raw[0] & 1) === 1;
    message = raw.subarray(5);
  }
  if (!compressed) return { message, decompressed: false };
  const decompress = encoding === "gzip" ? gunzipAsync : encoding === "br" ? brotliAsync : undefined;
  if (!decompress) return undefined;
  try {
    return { message: await decompress(message, { maxOutputLength: Math.max(1, readMaxBytes) }), decompressed: true };
  } catch {
    return undefined;
  }
}

const gunzipAsync = promisify(gunzip) as (input: InputType, options: ZlibOptions) => Promise<Buffer>;
const brotliAsync = promisify(brotliDecompress) as (input: InputType, options: ZlibOptions) => Promise<Buffer>;

function envelope(message: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(5 + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}

/** These chunks, then whatever `rest` still holds. */
async function* replay(chunks: Uint8Array[], rest?: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* chunks;
  if (!rest) return;
  for (let next = await rest.next(); !next.done; next = await rest.next()) yield next.value;
}

/** A body whose reading fails with `error`: Connect then answers the call with it. */
async function* failing(error: Error): AsyncGenerator<Uint8Array> {
  throw error;
}

function isAsyncIterable(body: unknown): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

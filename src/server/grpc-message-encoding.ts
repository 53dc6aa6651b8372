import type { RequestHandler } from "./listen";
import { onResponseHeaders, type Headers } from "./response-headers";

/**
 * Corrects two things of connect-es's gRPC answers, as they are written.
 *
 * A request the server cannot decode (bytes that are not the message, an envelope flagged
 * compressed without an encoding) is the client's mistake: INVALID_ARGUMENT, where connect-es
 * (like grpc-go) answers INTERNAL, which must mean a bug of ours. Its messages for those cases
 * are recognised by their fixed beginnings (test/security/fuzz.test.ts holds them to it).
 *
 * And it re-encodes the grpc-message header the way the gRPC spec says: percent-encode only bytes
 * outside 0x20..0x7E, and '%'. connect-es encodes it with encodeURIComponent, which also
 * escapes ':' ',' '/' and friends; grpc-js decodes with decodeURI, which leaves those escaped,
 * so its users read "Wrong expected revision%3A 7". The spec's encoding decodes cleanly in
 * every client.
 */
export function withSpecGrpcMessage(handler: RequestHandler): RequestHandler {
  return (req, res) => {
    onResponseHeaders(res, fix);
    handler(req, res);
  };
}

const UNDECODABLE_REQUEST = /^(parse binary: |invalid envelope, already compressed|received compressed envelope, but do not know how to decompress)/;
const INTERNAL = "13";
const INVALID_ARGUMENT = "3";

function fix(headers: Headers): void {
  const message = headers["grpc-message"];
  if (typeof message !== "string") return;
  let text: string;
  try {
    text = decodeURIComponent(message);
  } catch {
    return;
  }
  if (String(headers["grpc-status"]) === INTERNAL && UNDECODABLE_REQUEST.test(text)) headers["grpc-status"] = INVALID_ARGUMENT;
  headers["grpc-message"] = encodeGrpcMessage(text);
}

export function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

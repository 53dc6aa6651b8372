import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { inflatedTooLarge } from "./request-budget";
import type { RequestSizeLimits } from "./request-size-limits";

/**
 * Connect's gzip and brotli, the compressions it accepts by default, whose refusal of a message
 * that inflates past its method's limit names the setting, as every other limit's refusal does
 * (Connect's own says only "readMaxBytes"). Connect gives each method's own limit as
 * `readMaxBytes`, which tells an append's from the others'.
 */
export function requestDecompressions(sizes: RequestSizeLimits): Compression[] {
  return [compressionGzip, compressionBrotli].map((compression) => ({
    name: compression.name,
    compress: compression.compress,
    async decompress(bytes: Uint8Array, readMaxBytes: number) {
      try {
        return await compression.decompress(bytes, readMaxBytes);
      } catch (e) {
        if (!(e instanceof ConnectError) || e.code !== Code.ResourceExhausted) throw e;
        throw inflatedTooLarge(readMaxBytes === sizes.appends.maxBytes ? sizes.appends : { maxBytes: readMaxBytes, setting: "max-request-bytes" });
      }
    },
  }));
}

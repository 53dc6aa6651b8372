import { constants, type ServerHttp2Session } from "node:http2";

export interface StreamResetLimit {
  /** Calls a client may cancel at once on one connection. */
  burst: number;
  /** Calls a second it may cancel after that, for ever. */
  perSecond: number;
}

/**
 * Closes an HTTP/2 connection whose client cancels calls faster than `limit` allows, with
 * GOAWAY (ENHANCE_YOUR_CALM): a token bucket per connection, of `burst` cancels refilled at
 * `perSecond`. Opening a call and cancelling it at once (HTTP/2's "rapid reset") costs the
 * client a few bytes and the server a stream; call turns (call-turns.ts) drop such calls
 * unstarted, but Node's HTTP/2 layer still builds each stream, and a connection could go on
 * doing it for ever (one did 1,554 in a second here). Node 20 has no option for nghttp2's own
 * limit. The defaults are nghttp2's: far above what a client cancels in use, where even one
 * that stops with 1,000 calls open is closing its connection anyway.
 */
export function limitStreamResets(session: ServerHttp2Session, limit: StreamResetLimit): void {
  let tokens = limit.burst;
  let filled = performance.now();
  let closing = false;
  session.on("stream", (stream) => {
    stream.once("close", () => {
      if (closing || stream.rstCode !== constants.NGHTTP2_CANCEL) return;
      const now = performance.now();
      tokens = Math.min(limit.burst, tokens + ((now - filled) / 1000) * limit.perSecond);
      filled = now;
      if (--tokens >= 0) return;
      closing = true;
      session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      // Not from within the stream's own close: the GOAWAY goes out first, and Node's session
      // is not torn down in the middle of closing one of its streams (which left it hanging).
      setImmediate(() => session.destroy());
    });
  });
}

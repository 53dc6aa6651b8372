import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { limitStreamResets, type StreamResetLimit } from "./stream-reset-limit";

export type RequestHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

export interface ListenOptions {
  host: string;
  port: number;
  /**
   * PEM certificate and key: serve TLS, with HTTP/2 and HTTP/1.1 negotiated by ALPN. With a
   * client CA, client certificates are asked for and verified; a client without one still
   * connects (it may carry a token, or call what is public) and is told apart by the socket's
   * `authorized`.
   */
  tls?: TlsMaterial;
  /**
   * Ping every HTTP/2 connection this often; one whose previous ping is still unanswered is
   * dead and is closed, which ends its calls and frees its subscriptions. 0: no pings.
   */
  pingIntervalMs?: number;
  /** Bounds on what a slow or idle HTTP/1.1 client may hold; Node's own defaults where absent. */
  http1?: Http1Timeouts;
  /** SETTINGS_MAX_CONCURRENT_STREAMS of each HTTP/2 connection: a client queues its calls beyond it. */
  maxConcurrentStreams?: number;
  /** Most open connections (each a file descriptor); one more is closed as soon as it is accepted. */
  maxConnections?: number;
  /** How fast a client may cancel calls on one HTTP/2 connection before it is closed. */
  streamResets?: StreamResetLimit;
}

export interface Http1Timeouts {
  /** Most time from a request's first byte to the end of its headers; 0: none. */
  headersTimeoutMs: number;
  /** Most time from a request's first byte to the end of its body; 0: none. */
  requestTimeoutMs: number;
  /** How long a connection may sit idle between requests. */
  keepAliveTimeoutMs: number;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
}

export interface Listener {
  port: number;
  /** New certificates for connections from now on (those open keep theirs). */
  setTls(tls: TlsMaterial): void;
  /** Client connections open now. */
  connections(): number;
  /** Stops accepting, lets open calls finish for up to `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0");
const SNIFF_TIMEOUT_MS = 10_000;
/** Node checks the HTTP/1.1 header and request timeouts on an interval: this often at least (cheap: a walk of a native list), so that many slow clients that came together are cut in small groups. */
const MAX_TIMEOUT_CHECK_MS = 250;

/**
 * Serves one handler on one port. Without TLS, HTTP/2 (gRPC, h2c) and HTTP/1.1 (Connect JSON
 * with plain curl, gRPC-Web from browsers) share the port: the first bytes of a connection say
 * which protocol it speaks, and it is handed to that server. With TLS, ALPN decides.
 */
export async function listen(handler: RequestHandler, options: ListenOptions): Promise<Listener> {
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  const settings = options.maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams: options.maxConcurrentStreams };
  const h2 = options.tls
    ? createSecureServer({ ...secureContextOptions(options.tls), allowHTTP1: true, settings }, handler)
    : createHttp2Server({ settings }, handler);
  h2.on("session", (s) => {
    sessions.add(s);
    if (options.streamResets) limitStreamResets(s, options.streamResets);
    const pinger = options.pingIntervalMs ? keepPinging(s, options.pingIntervalMs) : undefined;
    s.once("close", () => {
      sessions.delete(s);
      if (pinger) clearInterval(pinger);
    });
  });
  const h1 = createHttp1Server(http1ServerOptions(options.http1), handler as (req: IncomingMessage, res: ServerResponse) => void);
  // Node checks the header and request timeouts only on servers that have emitted "listening",
  // and this one never listens: the sniffing server hands it its connections. Without this,
  // a client sending its headers a byte at a time held its connection for ever.
  h1.emit("listening");
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  };

  const server = options.tls
    ? h2
    : createNetServer({ noDelay: true }, (socket) => {
        track(socket);
        // A peer that resets during the sniff must not become an uncaught error; one that
        // connects and says nothing is dropped.
        socket.on("error", () => socket.destroy());
        socket.setTimeout(SNIFF_TIMEOUT_MS, () => socket.destroy());
        socket.once("readable", () => {
          socket.setTimeout(0);
          const head = socket.read(Math.min(socket.readableLength, HTTP2_PREFACE.length)) as Buffer | null;
          if (head === null) return void socket.destroy();
          socket.unshift(head);
          const isHttp2 = head.equals(HTTP2_PREFACE.subarray(0, head.length));
          (isHttp2 ? h2 : h1).emit("connection", socket);
        });
      });
  if (options.tls) {
    h2.on("connection", track);
    // The secure server serves HTTP/1.1 (allowHTTP1) with Node's HTTP/1.1 code, which reads
    // these timeouts from it as from an http.Server: set them before "listening" starts their
    // check. It has no keepAliveTimeout of its own, so idle connections stayed for ever.
    Object.assign(h2, http1ServerOptions(options.http1));
  }
  if (options.maxConnections !== undefined) server.maxConnections = options.maxConnections;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
    connections: () => sockets.size,
    setTls(tls) {
      if (!options.tls) throw new Error("the server was not started with TLS");
      (h2 as ReturnType<typeof createSecureServer>).setSecureContext(secureContextOptions(tls));
    },
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      h1.closeIdleConnections();
      // HTTP/1.1 keep-alive sockets close as soon as their call ends and they go idle.
      const idle = setInterval(() => h1.closeIdleConnections(), 50);
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
      }, graceMs);
      await closed;
      h1.close(); // it never listened: this only stops its timeout checks
      clearInterval(idle);
      clearTimeout(timer);
    },
  };
}

function secureContextOptions(tls: TlsMaterial) {
  return tls.clientCa
    ? { cert: tls.cert, key: tls.key, ca: tls.clientCa, requestCert: true, rejectUnauthorized: false }
    : { cert: tls.cert, key: tls.key };
}

/** The http.Server options (also properties of the secure HTTP/2 server) for `timeouts`. */
function http1ServerOptions(timeouts: Http1Timeouts | undefined) {
  if (!timeouts) return {};
  const shortest = Math.min(MAX_TIMEOUT_CHECK_MS * 4, ...[timeouts.headersTimeoutMs, timeouts.requestTimeoutMs].filter((ms) => ms > 0));
  return {
    headersTimeout: timeouts.headersTimeoutMs,
    requestTimeout: timeouts.requestTimeoutMs,
    keepAliveTimeout: timeouts.keepAliveTimeoutMs,
    // A timeout is noticed up to one check late: a quarter of the shortest keeps that small.
    connectionsCheckingInterval: Math.max(10, Math.floor(shortest / 4)),
  };
}

function keepPinging(session: Http2Session, intervalMs: number): NodeJS.Timeout {
  let unanswered = false;
  const timer = setInterval(() => {
    if (unanswered) {
      session.destroy();
      return;
    }
    if (session.closed || session.destroyed) return;
    unanswered = true;
    try {
      session.ping((err) => {
        if (!err) unanswered = false;
      });
    } catch {
      // Too many pings in flight or the session is closing: the next tick decides.
    }
  }, intervalMs);
  timer.unref();
  return timer;
}

import { createServer as createHttp1Server, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, createSecureServer, type Http2ServerRequest, type Http2ServerResponse, type Http2Session } from "node:http2";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";

export type RequestHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

export interface ListenOptions {
  host: string;
  port: number;
  /** PEM certificate and key: serve TLS, with HTTP/2 and HTTP/1.1 negotiated by ALPN. */
  tls?: { cert: Buffer; key: Buffer };
  /**
   * Ping every HTTP/2 connection this often; one whose previous ping is still unanswered is
   * dead and is closed, which ends its calls and frees its subscriptions. 0: no pings.
   */
  pingIntervalMs?: number;
}

export interface Listener {
  port: number;
  /** Stops accepting, lets open calls finish for up to `graceMs`, then cuts what is left. */
  close(graceMs: number): Promise<void>;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0");
const SNIFF_TIMEOUT_MS = 10_000;

/**
 * Serves one handler on one port. Without TLS, HTTP/2 (gRPC, h2c) and HTTP/1.1 (Connect JSON
 * with plain curl, gRPC-Web from browsers) share the port: the first bytes of a connection say
 * which protocol it speaks, and it is handed to that server. With TLS, ALPN decides.
 */
export async function listen(handler: RequestHandler, options: ListenOptions): Promise<Listener> {
  const sessions = new Set<Http2Session>();
  const sockets = new Set<Socket>();
  const h2 = options.tls
    ? createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true }, handler)
    : createHttp2Server({}, handler);
  h2.on("session", (s) => {
    sessions.add(s);
    const pinger = options.pingIntervalMs ? keepPinging(s, options.pingIntervalMs) : undefined;
    s.once("close", () => {
      sessions.delete(s);
      if (pinger) clearInterval(pinger);
    });
  });
  const h1 = createHttp1Server(handler as (req: IncomingMessage, res: ServerResponse) => void);
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
  if (options.tls) h2.on("connection", track);

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  return {
    port,
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
      clearInterval(idle);
      clearTimeout(timer);
    },
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

import type { Http2ServerRequest } from "node:http2";
import type { RequestHandler } from "./listen";

type Call = Parameters<RequestHandler>;

/** Calls started in one turn of the event loop, all connections together. */
export const DEFAULT_CALLS_PER_TURN = 16;

/**
 * Starts the calls of HTTP/2 connections in turns: a few per turn of the event loop, one
 * connection after another, rather than every call that one read of a connection brings, at
 * once. One read can bring hundreds of calls (their headers compress to a few bytes each), and
 * starting a call costs a few hundred microseconds of Connect, Node and our own work: a client
 * that opened and cancelled 1,670 subscriptions in a burst (as grpc-js does with calls queued
 * past the stream limit when they are cancelled) held the event loop for seconds, and every
 * other client's calls waited behind them. In turns, another connection's call waits for at most
 * a turn of each busy connection, and a call cancelled before its turn costs nothing more: it is
 * dropped unstarted (the HTTP/2 "rapid reset" attack's whole cost).
 *
 * HTTP/1.1 carries one call at a time per connection and is started at once.
 */
export function withCallTurns(handler: RequestHandler, callsPerTurn = DEFAULT_CALLS_PER_TURN): RequestHandler {
  /** Calls waiting for their turn, by connection, in the order the connections first waited. */
  const waiting = new Map<unknown, Call[]>();
  /** Calls started since this turn of the event loop began. */
  let started = 0;
  let scheduled = false;
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    setImmediate(turn);
  };
  /** The next turn: its first calls are those that waited, one connection after another. */
  function turn() {
    scheduled = false;
    started = 0;
    // Calls found cancelled are cheap to drop, but not free: bounded too.
    let dropped = 0;
    while (started < callsPerTurn && dropped < 64 * callsPerTurn && waiting.size > 0) {
      for (const [connection, calls] of waiting) {
        const call = calls.shift()!;
        if (calls.length === 0) waiting.delete(connection);
        if (isGone(call)) {
          dropped++;
          continue;
        }
        started++;
        handler(...call);
        if (started >= callsPerTurn) break;
      }
    }
    // Those left wait for the next turn, after the I/O that came meanwhile; the count starts
    // again then either way.
    if (waiting.size > 0 || started > 0) schedule();
  }
  return (req, res) => {
    if (req.httpVersionMajor !== 2) return handler(req, res);
    // Under the turn's share with none waiting, as nearly always: started at once.
    if (waiting.size === 0 && started < callsPerTurn) {
      started++;
      schedule();
      return handler(req, res);
    }
    const connection = (req as Http2ServerRequest).stream.session;
    let calls = waiting.get(connection);
    if (!calls) waiting.set(connection, (calls = []));
    calls.push([req, res]);
    schedule();
  };
}

function isGone([req]: Call): boolean {
  const stream = (req as Http2ServerRequest).stream;
  return stream.closed || stream.destroyed;
}

import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { withCallTurns } from "../../src/server/call-turns";
import type { RequestHandler } from "../../src/server/listen";
import { until } from "../support/until";

// Calls of HTTP/2 connections start a few per turn of the event loop, one connection after
// another; a call cancelled before its turn is never started.

let server: http2.Http2Server;
let url: string;
const started: string[] = [];
/** Calls held open (not answered) until the test ends them. */
const held: http2.Http2ServerResponse[] = [];

beforeAll(async () => {
  const handler: RequestHandler = (req, res) => {
    const call = String(req.headers["x-call"]);
    started.push(call);
    // What starting a real call costs, about: 200 of them hold the loop 400 ms if started at once.
    if (call.startsWith("busy-")) for (const until = performance.now() + 2; performance.now() < until; );
    held.push(res as http2.Http2ServerResponse);
  };
  server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } }, withCallTurns(handler, 4) as never);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  for (const res of held.splice(0)) if (!res.stream.closed) res.end();
  started.length = 0;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

function connect(): http2.ClientHttp2Session {
  const session = http2.connect(url);
  session.on("error", () => {});
  return session;
}

function open(session: http2.ClientHttp2Session, call: string): http2.ClientHttp2Stream {
  const stream = session.request({ ":method": "POST", ":path": "/x", "x-call": call });
  stream.on("error", () => {});
  stream.end();
  return stream;
}

test("calls cancelled in the same burst as they were opened are never started", async () => {
  const attacker = connect();
  // Opened and reset at once, written together: the server reads them in one go.
  for (let i = 0; i < 500; i++) open(attacker, `reset-${i}`).close(http2.constants.NGHTTP2_CANCEL);
  const after = connect();
  open(after, "after");
  await until(() => started.includes("after"), "the call after the burst to start");
  expect(started.filter((c) => c.startsWith("reset-")).length).toBeLessThan(50);
  attacker.destroy();
  after.destroy();
});

test("another connection's call starts within a turn of a busy one's, not after all its calls", async () => {
  const busy = connect();
  for (let i = 0; i < 200; i++) open(busy, `busy-${i}`);
  await until(() => started.length > 0, "the busy connection's calls to start");
  const other = connect();
  open(other, "other");
  await until(() => started.includes("other"), "the other connection's call to start");
  // 4 calls a turn, alternating: far fewer than 200 of the busy connection's went first.
  expect(started.indexOf("other")).toBeLessThan(120);
  await until(() => started.length === 201, "every call to start");
  expect(started.filter((c) => c.startsWith("busy-"))).toEqual(Array.from({ length: 200 }, (_, i) => `busy-${i}`));
  busy.destroy();
  other.destroy();
});

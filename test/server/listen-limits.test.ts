import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as http2 from "node:http2";
import { connect as netConnect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { listen, type Listener, type ListenOptions, type RequestHandler } from "../../src/server/listen";
import { until } from "../support/until";

// The connection limits of listen(), on a real port, for both ways it serves HTTP/1.1: beside
// h2c behind the sniffing server, and on the TLS server with allowHTTP1.

const HEADERS_TIMEOUT_MS = 400;
const REQUEST_TIMEOUT_MS = 800;
const KEEP_ALIVE_TIMEOUT_MS = 200;
/** Node keeps an idle connection this much past its keep-alive timeout. */
const NODE_KEEP_ALIVE_BUFFER_MS = 1000;

let dir: string;
let tls: { cert: Buffer; key: Buffer };
let listener: Listener | undefined;
let held: Array<() => void> = [];
let heldNow = 0;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-listen-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
  ], { stdio: "ignore" });
  tls = { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) };
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

afterEach(async () => {
  held.forEach((release) => release());
  held = [];
  heldNow = 0;
  await listener?.close(100);
  listener = undefined;
});

/** Reads the body, then answers; `/hold` answers only when the test releases it. */
const handler: RequestHandler = (req, res) => {
  req.resume();
  req.once("end", () => {
    if (req.url !== "/hold") return void res.end("ok");
    heldNow++;
    held.push(() => {
      heldNow--;
      res.end("released");
    });
  });
};

async function start(options: Partial<ListenOptions> = {}): Promise<number> {
  listener = await listen(handler, {
    host: "127.0.0.1",
    port: 0,
    http1: { headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS, keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS },
    ...options,
  });
  return listener.port;
}

function open(port: number, secure: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tlsConnect({ host: "127.0.0.1", port, ca: tls.cert, ALPNProtocols: ["http/1.1"] }, () => resolve(socket))
      : netConnect({ host: "127.0.0.1", port }, () => resolve(socket));
    socket.once("error", reject);
  });
}

/**
 * Writes `head` at once, then `trickle` one byte every 50 ms (no faster than a slow client),
 * and answers when the server closes the connection: after how long, and what it said.
 */
async function trickle(socket: Socket, head: string, trickle: string): Promise<{ ms: number; answer: string }> {
  const started = Date.now();
  let answer = "";
  socket.on("data", (d) => (answer += d));
  socket.on("error", () => {});
  socket.write(head);
  let i = 0;
  const timer = setInterval(() => {
    if (i < trickle.length && !socket.destroyed) socket.write(trickle[i++]);
  }, 50);
  await new Promise((resolve) => socket.once("close", resolve));
  clearInterval(timer);
  return { ms: Date.now() - started, answer };
}

const SLOW_HEADERS = "x-slow: " + "a".repeat(200) + "\r\n\r\n";

describe.each([
  ["beside h2c", false],
  ["on the TLS server (allowHTTP1)", true],
])("HTTP/1.1 %s", (_name, secure) => {
  const options = () => (secure ? { tls } : {});

  test("a client that sends its headers a byte at a time is cut off after the headers timeout", async () => {
    const port = await start(options());
    const socket = await open(port, secure);

    const { ms, answer } = await trickle(socket, "GET / HTTP/1.1\r\nhost: x\r\n", SLOW_HEADERS);

    expect(ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(HEADERS_TIMEOUT_MS + 1500);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  test("a client that sends its body a byte at a time is cut off after the request timeout", async () => {
    const port = await start(options());
    const socket = await open(port, secure);

    const { ms, answer } = await trickle(socket, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n", "b".repeat(1000));

    expect(ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + 1500);
    expect(answer).not.toMatch(/ok/);
  });

  test("a request that arrives in time is answered, and its idle connection closes after the keep-alive timeout", async () => {
    const port = await start(options());
    const socket = await open(port, secure);

    const { ms, answer } = await trickle(socket, "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\n", "body");

    expect(answer).toMatch(/^HTTP\/1\.1 200[^]*ok$/);
    expect(ms).toBeGreaterThanOrEqual(KEEP_ALIVE_TIMEOUT_MS);
    expect(ms).toBeLessThan(200 + KEEP_ALIVE_TIMEOUT_MS + NODE_KEEP_ALIVE_BUFFER_MS + 1000);
  });
});

describe("HTTP/2", () => {
  test("a connection carries at most max-concurrent-streams calls at once; more wait for a free one", async () => {
    const port = await start({ maxConcurrentStreams: 3 });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    await new Promise((resolve) => session.once("remoteSettings", resolve));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(3);

    const answers = Array.from({ length: 4 }, () => {
      const stream = session.request({ ":method": "POST", ":path": "/hold" });
      stream.end();
      let body = "";
      stream.on("data", (d) => (body += d));
      return new Promise<string>((resolve) => stream.once("end", () => resolve(body)));
    });
    await until(() => heldNow === 3, "three calls held");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(heldNow).toBe(3);

    held.shift()!();
    await until(() => heldNow === 3 && held.length === 3, "the fourth call let in");
    held.splice(0).forEach((release) => release());
    expect(await Promise.all(answers)).toEqual(["released", "released", "released", "released"]);
    session.close();
  });
});

describe("connections", () => {
  test("a connection past max-connections is closed at once; closing one lets the next in", async () => {
    const port = await start({ maxConnections: 2 });
    const first = await open(port, false);
    const second = await open(port, false);
    await new Promise((resolve) => setTimeout(resolve, 50)); // accepted by the server, not just the kernel

    const third = await open(port, false);
    const started = Date.now();
    await new Promise((resolve) => third.once("close", resolve));
    expect(Date.now() - started).toBeLessThan(500);

    first.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const fourth = await open(port, false);
    const { answer } = await trickle(fourth, "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "");
    expect(answer).toMatch(/^HTTP\/1\.1 200[^]*ok$/);
    second.destroy();
  });
});

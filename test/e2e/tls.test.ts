import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as connectHttp2 } from "node:http2";
import { request as httpRequest } from "node:http";
import { Agent, request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { EventStoreService, ProposedEventSchema, type RecordedEvent } from "../../gen/eventstore/v1/eventstore_pb";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { withoutSettings } from "../support/server-env";

const MAIN = join(__dirname, "../../dist/src/server/main.js");

let dir: string;
let ca: Buffer;
let db: TestDatabase;
let child: ChildProcess;
let exited: Promise<number | null>;
let ready: Record<string, unknown>;
let port: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-tls-"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "rsa:2048", "-nodes",
    "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"),
    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
  ], { stdio: "ignore" });
  ca = readFileSync(join(dir, "cert.pem"));
  db = await createTestDatabase();

  const base = withoutSettings();
  child = spawn(process.execPath, [MAIN, "serve"], {
    env: { ...base, HOST: "127.0.0.1", PORT: "0", DATABASE_URL: db.url, TLS_CERT: join(dir, "cert.pem"), TLS_KEY: join(dir, "key.pem") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
  let out = "";
  ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready in 20 s:\n${out}`)), 20_000);
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const line = out.split("\n").find((l) => l.includes('"msg":"ready"'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as Record<string, unknown>);
      }
    });
    void exited.then((code) => reject(new Error(`exited with ${code}:\n${out}`)));
  });
  port = ready.port as number;
});

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  }
  await db?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function events(n: number) {
  return Array.from({ length: n }, (_, i) =>
    create(ProposedEventSchema, { type: "Secured", payload: { case: "data", value: new TextEncoder().encode(`{"i":${i}}`) } }),
  );
}

async function read(client: Client<typeof EventStoreService>, stream: string): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const m of client.readStream({ stream })) all.push(...m.events);
  return all;
}

async function failure(work: Promise<unknown>): Promise<ConnectError> {
  try {
    await work;
  } catch (e) {
    return ConnectError.from(e);
  }
  throw new Error("the call succeeded");
}

test("it says it serves https", () => {
  expect(ready.address).toBe(`https://127.0.0.1:${port}`);
});

test.each([
  ["localhost", "localhost"],
  ["127.0.0.1", "the IP address"],
])("gRPC over HTTP/2 with TLS works when calling %s (%s in the certificate)", async (host) => {
  const transport = createGrpcTransport({ baseUrl: `https://${host}:${port}`, nodeOptions: { ca } });
  const client = createClient(EventStoreService, transport);
  const stream = `tls-h2-${randomUUID()}`;
  const appended = await client.append({ stream, events: events(3) });
  expect(appended.revision).toBe(2n);
  const back = await read(client, stream);
  expect(back.map((e) => e.id)).toEqual(appended.eventIds);
  expect(back.map((e) => e.position)).toEqual(appended.positions);
  expect((await createClient(Health, transport).check({ service: "" })).status).toBe(ServingStatus.SERVING);
});

test("Connect over HTTP/1.1 with TLS works, and sees what gRPC wrote", async () => {
  const h1 = createClient(EventStoreService, createConnectTransport({ baseUrl: `https://localhost:${port}`, httpVersion: "1.1", nodeOptions: { ca } }));
  const h2 = createClient(EventStoreService, createGrpcTransport({ baseUrl: `https://localhost:${port}`, nodeOptions: { ca } }));
  const stream = `tls-h1-${randomUUID()}`;
  const viaH1 = await h1.append({ stream, events: events(2) });
  const viaH2 = await h2.append({ stream, events: events(1), expected: { case: "expectedRevision", value: 1n } });
  expect(viaH2.revision).toBe(2n);
  expect((await read(h1, stream)).map((e) => e.id)).toEqual([...viaH1.eventIds, ...viaH2.eventIds]);
});

test("Connect and gRPC-Web over HTTP/1.1 and Connect over HTTP/2 with TLS work too", async () => {
  const base = { baseUrl: `https://localhost:${port}`, nodeOptions: { ca } };
  const clients = [
    createClient(EventStoreService, createConnectTransport({ ...base, httpVersion: "1.1", useBinaryFormat: true })),
    createClient(EventStoreService, createGrpcWebTransport({ ...base, httpVersion: "1.1" })),
    createClient(EventStoreService, createConnectTransport({ ...base, httpVersion: "2" })),
  ];
  for (const client of clients) {
    const stream = `tls-mixed-${randomUUID()}`;
    const appended = await client.append({ stream, events: events(2) });
    expect((await read(client, stream)).map((e) => e.id)).toEqual(appended.eventIds);
  }
});

test("HTTP/1.1 really is HTTP/1.1 and HTTP/2 really is HTTP/2 (ALPN)", async () => {
  const body = JSON.stringify({ service: "" });
  const h1 = await new Promise<{ version: string; status?: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        path: "/grpc.health.v1.Health/Check",
        method: "POST",
        ca,
        servername: "localhost",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ version: res.httpVersion, status: res.statusCode, body: text }));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
  expect(h1).toEqual({ version: "1.1", status: 200, body: '{"status":"SERVING"}' });

  const session = connectHttp2(`https://localhost:${port}`, { ca });
  try {
    const h2 = await new Promise<{ status: unknown; body: string }>((resolve, reject) => {
      const req = session.request({ ":method": "POST", ":path": "/grpc.health.v1.Health/Check", "content-type": "application/json" });
      let status: unknown;
      let text = "";
      req.on("response", (headers) => (status = headers[":status"]));
      req.setEncoding("utf8").on("data", (c: string) => (text += c));
      req.on("end", () => resolve({ status, body: text }));
      req.on("error", reject);
      req.end(body);
    });
    expect(h2).toEqual({ status: 200, body: '{"status":"SERVING"}' });
    expect(session.alpnProtocol).toBe("h2");
  } finally {
    session.close();
  }
});

test("a client that does not trust the certificate is refused", async () => {
  const untrusting = createClient(Health, createGrpcTransport({ baseUrl: `https://localhost:${port}` }));
  const e = await failure(untrusting.check({ service: "" }));
  expect(e.message).toMatch(/self[- ]signed certificate/i);
});

test("plaintext is not served on the TLS port", async () => {
  const h2c = createClient(Health, createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}`, defaultTimeoutMs: 3000 }));
  await expect(h2c.check({ service: "" })).rejects.toThrow();
  const status = await new Promise<number | string>((resolve) => {
    const req = httpRequest({ host: "127.0.0.1", port, path: "/grpc.health.v1.Health/Check", method: "POST", headers: { "content-type": "application/json" } }, (res) =>
      resolve(res.statusCode ?? "none"),
    );
    req.on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "error"));
    req.setTimeout(3000, () => req.destroy(Object.assign(new Error("timeout"), { code: "TIMEOUT" })));
    req.end("{}");
  });
  expect(status).not.toBe(200);
});

test("SIGTERM stops the TLS server gracefully and promptly, though an HTTP/1.1 client keeps its connection alive", async () => {
  const transport = createGrpcTransport({ baseUrl: `https://localhost:${port}`, nodeOptions: { ca } });
  const watch = createClient(Health, transport).watch({ service: "" })[Symbol.asyncIterator]();
  expect((await watch.next()).value?.status).toBe(ServingStatus.SERVING);
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000, ca });
  try {
    const h1 = createClient(Health, createConnectTransport({ baseUrl: `https://localhost:${port}`, httpVersion: "1.1", nodeOptions: { agent } }));
    expect((await h1.check({ service: "" })).status).toBe(ServingStatus.SERVING);
    // The connection goes back to the agent's pool, idle and kept alive, a moment after the call.
    for (let i = 0; i < 100 && Object.values(agent.freeSockets).flat().length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(Object.values(agent.freeSockets).flat()).toHaveLength(1);

    const signalledAt = Date.now();
    child.kill("SIGTERM");
    const ended = await failure(
      (async () => {
        for (let r = await watch.next(); !r.done; r = await watch.next());
      })(),
    );
    expect(ended.code).toBe(Code.Unavailable);
    expect(await exited).toBe(0);
    // Well inside the 10 s grace period: idle connections do not hold the shutdown up.
    expect(Date.now() - signalledAt).toBeLessThan(3000);
  } finally {
    agent.destroy();
  }
});

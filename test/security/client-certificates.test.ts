import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { stringify } from "yaml";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

/**
 * mTLS: a client certificate signed by the configured CA names its principal (its subject CN,
 * or a SAN); one from another CA, or none, names nobody. The server's certificate, renewed on
 * disk, is served to new connections without a restart.
 */

let dir: string;
let db: TestDatabase;
let server: TestServer;

const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });

/** A CA, and a certificate it signs for `cn` (with `san`), as PEM files named after `name`. */
function issue(ca: string, name: string, cn: string, san: string): void {
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`);
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
  openssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`);
}

function authority(name: string): void {
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "1", "-subj", `/CN=${name}`);
}

const read = (file: string) => readFileSync(join(dir, file));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-mtls-"));
  authority("ca");
  authority("rogue-ca");
  issue("ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1");
  issue("ca", "reporter", "reporter", "URI:spiffe://example.test/reporter");
  issue("rogue-ca", "impostor", "reporter", "URI:spiffe://example.test/reporter");
  writeFileSync(
    join(dir, "auth.yaml"),
    stringify({ rules: [{ principals: ["reporter"], permissions: ["read", "write"], streams: ["report-*"] }] }),
  );
  db = await createTestDatabase();
  server = await startTestServer(
    { kind: "postgres", url: db.url },
    {},
    { tls: { cert: join(dir, "server.pem"), key: join(dir, "server.key"), clientCa: join(dir, "ca.pem") }, authFile: join(dir, "auth.yaml") },
  );
});

afterAll(async () => {
  await server?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

function clientWith(cert?: string): grpc.Client & Record<string, Function> {
  const definition = protoLoader.loadSync(join(__dirname, "../../proto/eventstore/v1/eventstore.proto"), { includeDirs: [join(__dirname, "../../proto")] });
  const pkg = grpc.loadPackageDefinition(definition) as any;
  const credentials = cert ? grpc.credentials.createSsl(read("ca.pem"), read(`${cert}.key`), read(`${cert}.pem`)) : grpc.credentials.createSsl(read("ca.pem"));
  return new pkg.eventstore.v1.EventStoreService(`localhost:${server.port}`, credentials);
}

function append(client: grpc.Client & Record<string, Function>, stream: string): Promise<{ code: grpc.status; details?: string }> {
  return new Promise((resolve) =>
    client.append({ stream, events: [{ type: "T", data: Buffer.from("{}") }] }, (e: grpc.ServiceError | null) =>
      resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK }),
    ),
  );
}

test("a certificate from the client CA is its subject's principal, with that principal's permissions", async () => {
  const client = clientWith("reporter");
  try {
    expect((await append(client, "report-1")).code).toBe(grpc.status.OK);
    expect(await append(client, "payroll-1")).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringContaining("reporter") });
  } finally {
    client.close();
  }
});

test("no certificate, or one from another CA with the same name, is UNAUTHENTICATED", async () => {
  for (const cert of [undefined, "impostor"]) {
    const client = clientWith(cert);
    try {
      expect((await append(client, "report-1")).code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  }
});

test("a renewed server certificate is served to new connections without a restart", async () => {
  const serial = () =>
    new Promise<string>((resolve, reject) => {
      const socket = tlsConnect({ host: "127.0.0.1", port: server.port, ca: read("ca.pem"), servername: "localhost", ALPNProtocols: ["h2"] }, () => {
        resolve(socket.getPeerCertificate().serialNumber);
        socket.end();
      });
      socket.once("error", reject);
    });
  const before = await serial();
  // Renewal as a certificate manager does it: the new key, then the new certificate, renamed into place.
  issue("ca", "renewed", "localhost", "DNS:localhost,IP:127.0.0.1");
  renameSync(join(dir, "renewed.key"), join(dir, "server.key"));
  renameSync(join(dir, "renewed.pem"), join(dir, "server.pem"));
  const after = await until(async () => {
    const s = await serial();
    return s !== before && s;
  }, "the renewed certificate", 5000);
  expect(after).not.toBe(before);
  // And calls on it still authenticate by client certificate.
  const client = clientWith("reporter");
  try {
    expect((await append(client, "report-2")).code).toBe(grpc.status.OK);
  } finally {
    client.close();
  }
});

test("the principal can come from a SAN instead of the subject", async () => {
  writeFileSync(
    join(dir, "auth.yaml"),
    stringify({
      clientCertificates: { principalFrom: "san.uri" },
      rules: [{ principals: ["spiffe://example.test/reporter"], permissions: ["write"], streams: ["san-*"] }],
    }),
  );
  const client = clientWith("reporter");
  try {
    await until(async () => (await append(client, "san-1")).code === grpc.status.OK, "the SAN principal", 5000);
    expect((await append(client, "report-3")).code).toBe(grpc.status.PERMISSION_DENIED);
  } finally {
    client.close();
  }
});

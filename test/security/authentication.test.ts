import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT, type KeyLike } from "jose";
import { stringify } from "yaml";
import { createGrpcJsClient } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";
import { until } from "../support/until";

/**
 * API keys and JWTs, as a client sends them (authorization: Bearer), and the files they are
 * configured in changing under a running server.
 */

const ISSUER = "https://login.example.test/";
const AUDIENCE = "eventstore";

let dir: string;
let db: TestDatabase;
let server: TestServer;
let client: grpc.Client & Record<string, Function>;
let health: grpc.Client & Record<string, Function>;
const warnings: string[] = [];
let signingKey: { privateKey: KeyLike; kid: string };

interface Key {
  principal: string;
  token: string;
}

function apiKey(principal: string): Key {
  return { principal, token: randomBytes(32).toString("base64url") };
}

const alice = apiKey("alice");
const bob = apiKey("bob");

function writeAuth(keys: Key[], extra: Record<string, unknown> = {}): void {
  // As an operator would: a new file renamed over the old one.
  const file = join(dir, "auth.yaml");
  writeFileSync(`${file}.new`, typeof extra.raw === "string" ? extra.raw : stringify({
    tokens: keys.map((k) => ({ principal: k.principal, sha256: createHash("sha256").update(k.token).digest("hex") })),
    jwt: { jwksFile: join(dir, "jwks.json"), issuer: ISSUER, audience: AUDIENCE, clockToleranceSeconds: 30, rolesClaim: "realm_access.roles" },
    rules: [
      { principals: ["alice", "bob"], permissions: ["write"], streams: ["*"] },
      { roles: ["writer"], permissions: ["write"], categories: ["jwt"] },
    ],
    ...extra,
  }));
  renameSync(`${file}.new`, file);
}

async function writeJwks(): Promise<{ privateKey: KeyLike; kid: string }> {
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const kid = randomBytes(8).toString("hex");
  writeFileSync(`${join(dir, "jwks.json")}.new`, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: "ES256", use: "sig" }] }));
  renameSync(`${join(dir, "jwks.json")}.new`, join(dir, "jwks.json"));
  return { privateKey, kid };
}

function jwt(claims: Record<string, unknown>, options: { exp?: number; iss?: string; aud?: string; key?: { privateKey: KeyLike; kid: string } } = {}) {
  const key = options.key ?? signingKey;
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "ES256", kid: key.kid })
    .setIssuer(options.iss ?? ISSUER)
    .setAudience(options.aud ?? AUDIENCE)
    .setSubject("svc-1")
    .setIssuedAt(now)
    .setExpirationTime(now + (options.exp ?? 300))
    .sign(key.privateKey);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "eventstore-authn-"));
  signingKey = await writeJwks();
  writeAuth([alice]);
  db = await createTestDatabase();
  const log = { info() {}, warn() {}, error: (m: string, f?: Record<string, unknown>) => void warnings.push(`${m} ${JSON.stringify(f)}`) };
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, { authFile: join(dir, "auth.yaml") }, log);
  client = createGrpcJsClient(`127.0.0.1:${server.port}`);
  const { loadSync } = await import("@grpc/proto-loader");
  const pkg = grpc.loadPackageDefinition(loadSync(join(__dirname, "../../proto/grpc/health/v1/health.proto"))) as any;
  health = new pkg.grpc.health.v1.Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  health?.close();
  await server?.stop();
  await db?.drop();
  rmSync(dir, { recursive: true, force: true });
});

/** The code an append to `stream` answers, with `authorization` as given. */
function append(authorization: string | undefined, stream = `s-${randomBytes(4).toString("hex")}`): Promise<{ code: grpc.status; details?: string }> {
  const metadata = new grpc.Metadata();
  if (authorization !== undefined) metadata.set("authorization", authorization);
  return new Promise((resolve) =>
    client.append({ stream, events: [{ type: "T", data: Buffer.from("{}") }] }, metadata, (e: grpc.ServiceError | null) =>
      resolve(e ? { code: e.code, details: e.details } : { code: grpc.status.OK }),
    ),
  );
}

describe("API keys", () => {
  test("a known key is its principal; an unknown key, a malformed header or none is UNAUTHENTICATED", async () => {
    expect((await append(`Bearer ${alice.token}`)).code).toBe(grpc.status.OK);
    expect(await append(`Bearer ${bob.token}`)).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringContaining("neither a known API key nor a JWT") });
    expect(await append(`Basic ${alice.token}`)).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringContaining("Bearer") });
    expect(await append(undefined)).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringContaining("no credentials") });
  });

  test("a changed file is in force within seconds, without a restart; a broken one leaves the last good one", async () => {
    writeAuth([bob]);
    await until(async () => (await append(`Bearer ${bob.token}`)).code === grpc.status.OK, "bob's key to work", 5000);
    expect((await append(`Bearer ${alice.token}`)).code).toBe(grpc.status.UNAUTHENTICATED);

    writeAuth([], { raw: "tokens: [ this is not: yaml" });
    await until(async () => warnings.some((w) => w.includes("not reloaded")), "the failed reload to be logged", 5000);
    expect((await append(`Bearer ${bob.token}`)).code).toBe(grpc.status.OK);

    writeAuth([alice]);
    await until(async () => (await append(`Bearer ${alice.token}`)).code === grpc.status.OK, "alice's key to work again", 5000);
    // A reload on request (SIGHUP) reads the same file again: nothing changes.
    server.reload();
    expect((await append(`Bearer ${alice.token}`)).code).toBe(grpc.status.OK);
  });
});

describe("JWT bearer tokens", () => {
  test("a valid token is its subject with the roles of its claim", async () => {
    expect((await append(`Bearer ${await jwt({ realm_access: { roles: ["writer"] } })}`, "jwt-1")).code).toBe(grpc.status.OK);
    // Without the role the rule does not apply: authenticated, but not allowed.
    expect((await append(`Bearer ${await jwt({})}`, "jwt-1")).code).toBe(grpc.status.PERMISSION_DENIED);
  });

  test.each([
    ["expired past the clock tolerance", { exp: -120 }, "exp"],
    ["for another audience", { aud: "someone-else" }, "aud"],
    ["from another issuer", { iss: "https://evil.example.test/" }, "iss"],
  ])("a token %s is UNAUTHENTICATED, saying which claim failed", async (_what, options, claim) => {
    const outcome = await append(`Bearer ${await jwt({ realm_access: { roles: ["writer"] } }, options)}`, "jwt-1");
    expect(outcome).toMatchObject({ code: grpc.status.UNAUTHENTICATED, details: expect.stringContaining(claim) });
  });

  test("a token expired within the clock tolerance still holds", async () => {
    expect((await append(`Bearer ${await jwt({ realm_access: { roles: ["writer"] } }, { exp: -10 })}`, "jwt-1")).code).toBe(grpc.status.OK);
  });

  test("a token signed by a key not in the set, or unsigned, is UNAUTHENTICATED", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    expect((await append(`Bearer ${await jwt({}, { key: { privateKey, kid: signingKey.kid } })}`, "jwt-1")).code).toBe(grpc.status.UNAUTHENTICATED);
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const unsigned = `${b64({ alg: "none" })}.${b64({ sub: "svc-1", iss: ISSUER, aud: AUDIENCE, exp: Date.now() / 1000 + 60, realm_access: { roles: ["writer"] } })}.`;
    expect((await append(`Bearer ${unsigned}`, "jwt-1")).code).toBe(grpc.status.UNAUTHENTICATED);
  });

  test("a rotated key set is in force within seconds: the old key's tokens stop verifying", async () => {
    const old = await jwt({ realm_access: { roles: ["writer"] } });
    expect((await append(`Bearer ${old}`, "jwt-1")).code).toBe(grpc.status.OK);
    signingKey = await writeJwks();
    const fresh = await jwt({ realm_access: { roles: ["writer"] } });
    await until(async () => (await append(`Bearer ${fresh}`, "jwt-1")).code === grpc.status.OK, "the new key to verify", 5000);
    expect((await append(`Bearer ${old}`, "jwt-1")).code).toBe(grpc.status.UNAUTHENTICATED);
  });
});

describe("public services", () => {
  const check = (authorization?: string) => {
    const metadata = new grpc.Metadata();
    if (authorization) metadata.set("authorization", authorization);
    return new Promise<grpc.status>((resolve) => health.check({ service: "" }, metadata, (e: grpc.ServiceError | null) => resolve(e ? e.code : grpc.status.OK)));
  };

  test("health answers anyone by default, and only authenticated callers when the file says so", async () => {
    expect(await check()).toBe(grpc.status.OK);
    // publicServices is read at start: this server keeps health public whatever the file says later.
    const closed = join(dir, "closed.yaml");
    writeFileSync(closed, stringify({ tokens: [{ principal: "alice", sha256: createHash("sha256").update(alice.token).digest("hex") }], publicServices: [] }));
    const other = await startTestServer({ kind: "postgres", url: db.url }, {}, { authFile: closed });
    const { loadSync } = await import("@grpc/proto-loader");
    const pkg = grpc.loadPackageDefinition(loadSync(join(__dirname, "../../proto/grpc/health/v1/health.proto"))) as any;
    const otherHealth = new pkg.grpc.health.v1.Health(`127.0.0.1:${other.port}`, grpc.credentials.createInsecure());
    try {
      const code = (authorization?: string) => {
        const metadata = new grpc.Metadata();
        if (authorization) metadata.set("authorization", authorization);
        return new Promise<grpc.status>((resolve) => otherHealth.check({ service: "" }, metadata, (e: grpc.ServiceError | null) => resolve(e ? e.code : grpc.status.OK)));
      };
      expect(await code()).toBe(grpc.status.UNAUTHENTICATED);
      expect(await code(`Bearer ${alice.token}`)).toBe(grpc.status.OK);
    } finally {
      otherHealth.close();
      await other.stop();
    }
  });
});

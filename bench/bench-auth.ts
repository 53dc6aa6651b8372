import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import type { Interceptor } from "@connectrpc/connect";
import { stringify } from "yaml";

/**
 * `--auth`: every server the benchmark starts reads an auth file (AUTH_FILE, inherited by the
 * server processes), and every client sends an API key (BENCH_TOKEN). The file holds the rules a
 * real deployment would: several principals and roles, the benchmark's own among them, so that
 * each call pays for an authentication and a rule check as it would in production.
 */
export function enableBenchAuth(): string {
  const dir = mkdtempSync(join(tmpdir(), "eventstore-bench-auth-"));
  const token = randomBytes(32).toString("base64url");
  const others = Array.from({ length: 20 }, (_, i) => ({ principal: `service-${i}`, roles: [`role-${i % 5}`], sha256: randomBytes(32).toString("hex") }));
  const file = join(dir, "auth.yaml");
  writeFileSync(
    file,
    stringify({
      tokens: [...others, { principal: "bench", roles: ["benchmark"], sha256: createHash("sha256").update(token).digest("hex") }],
      rules: [
        ...Array.from({ length: 5 }, (_, i) => ({ roles: [`role-${i}`], permissions: ["read", "write", "subscribe"], categories: [`cat${i}`] })),
        { roles: ["benchmark"], permissions: ["read", "write", "subscribe", "checkpoint"], streams: ["*"], subscriptions: ["*"] },
        // The catch-up case runs a projector too.
        { roles: ["benchmark"], permissions: ["projection.read", "projection.run", "projection.admin"], projections: ["*"] },
      ],
    }),
  );
  process.env.AUTH_FILE = file;
  process.env.BENCH_TOKEN = token;
  return file;
}

function token(): string | undefined {
  return process.env.BENCH_TOKEN || undefined;
}

/**
 * The metadata every grpc-js call of the benchmark sends: the benchmark's key, if it has one,
 * else none. Given per call, as an application over a plaintext channel would (grpc-js allows
 * call credentials on TLS channels only), so that both runs make the same calls: an
 * interceptor, tried first, cost the client more than the key cost the server.
 */
export function grpcJsCallMetadata(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const key = token();
  if (key) metadata.set("authorization", `Bearer ${key}`);
  return metadata;
}

/** Connect interceptors that send the benchmark's key on every call, if it has one. */
export function connectAuthInterceptors(): Interceptor[] {
  const key = token();
  if (!key) return [];
  return [
    (next) => (req) => {
      req.header.set("authorization", `Bearer ${key}`);
      return next(req);
    },
  ];
}

/** The key for the SDK client's `token` option, if the benchmark has one. */
export function sdkToken(): string | undefined {
  return token();
}

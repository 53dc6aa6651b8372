import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { stringify } from "yaml";

export interface AuthFileSpec {
  /** Principals with an API key each (made here), and their roles. */
  principals?: Record<string, { roles?: string[] }>;
  rules?: Record<string, unknown>[];
  /** Anything else of the file (jwt, roles, publicServices, clientCertificates). */
  extra?: Record<string, unknown>;
}

/** Writes an auth file with a fresh API key per principal; answers the keys by principal. */
export function writeAuthFile(path: string, spec: AuthFileSpec): Record<string, string> {
  const keys: Record<string, string> = {};
  const tokens = Object.entries(spec.principals ?? {}).map(([principal, { roles }]) => {
    keys[principal] = randomBytes(32).toString("base64url");
    return { principal, ...(roles ? { roles } : {}), sha256: createHash("sha256").update(keys[principal]).digest("hex") };
  });
  writeFileSync(path, stringify({ tokens, rules: spec.rules ?? [], ...spec.extra }));
  return keys;
}

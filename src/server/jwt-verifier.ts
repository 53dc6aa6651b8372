import { readFileSync } from "node:fs";
import { createLocalJWKSet, createRemoteJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTPayload } from "jose";
import { unauthenticated, type Principal } from "../domain";
import { AuthConfigError, type JwtSettings } from "./auth-config";

export interface JwtVerifier {
  /** The token's principal and roles, or UNAUTHENTICATED saying why the token does not hold. */
  verify(token: string): Promise<Principal>;
}

/** Verified tokens kept, so that a client's steady stream of calls verifies its token once. */
const CACHE_ENTRIES = 10_000;

/**
 * Verifies JWT bearer tokens with jose: signature against the key set (a file, read now; or a
 * URL, fetched when a token names a key not seen yet), issuer, audience, expiry and not-before
 * within the clock tolerance. A reload makes a new verifier, so a key removed from the set stops
 * verifying at once (the cache goes with the old verifier).
 */
export function createJwtVerifier(settings: JwtSettings): JwtVerifier {
  const keys = "file" in settings.jwks ? createLocalJWKSet(readKeySet(settings.jwks.file)) : createRemoteJWKSet(settings.jwks.url, { timeoutDuration: 5000 });
  const cache = new Map<string, { principal: Principal; expiresAt: number }>();
  const toleranceMs = settings.clockToleranceSeconds * 1000;
  return {
    async verify(token) {
      const cached = cache.get(token);
      if (cached && Date.now() < cached.expiresAt + toleranceMs) return cached.principal;
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: settings.issuer,
          audience: settings.audience,
          clockTolerance: settings.clockToleranceSeconds,
          algorithms: settings.algorithms,
          requiredClaims: ["exp"],
        }));
      } catch (e) {
        throw unauthenticated(`the bearer token is not a valid JWT: ${reasonOf(e)}`);
      }
      const name = claim(payload, settings.principalClaim);
      if (typeof name !== "string" || name.length === 0) {
        throw unauthenticated(`the JWT has no string claim ${settings.principalClaim} to name its principal`);
      }
      const principal: Principal = { name, roles: rolesOf(claim(payload, settings.rolesClaim)) };
      if (cache.size >= CACHE_ENTRIES) cache.clear();
      cache.set(token, { principal, expiresAt: (payload.exp as number) * 1000 });
      return principal;
    },
  };
}

function readKeySet(file: string): JSONWebKeySet {
  let set: unknown;
  try {
    set = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new AuthConfigError(`${file}: cannot read the JSON Web Key Set: ${(e as Error).message}`);
  }
  if (set === null || typeof set !== "object" || !Array.isArray((set as JSONWebKeySet).keys)) {
    throw new AuthConfigError(`${file}: a JSON Web Key Set is an object with a "keys" list`);
  }
  return set as JSONWebKeySet;
}

/** A claim by dotted path: `realm_access.roles` is `payload.realm_access.roles`. */
function claim(payload: JWTPayload, path: string): unknown {
  let value: unknown = payload;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/** Roles as a list of strings, or as one space-separated string (as OAuth's `scope` is). */
function rolesOf(value: unknown): string[] {
  if (typeof value === "string") return value.split(" ").filter((r) => r.length > 0);
  if (Array.isArray(value)) return value.filter((r): r is string => typeof r === "string");
  return [];
}

/** jose's own words on what failed (expired, wrong audience, bad signature), never a stack. */
function reasonOf(e: unknown): string {
  if (e instanceof errors.JOSEError) return e.message;
  return "it could not be verified";
}

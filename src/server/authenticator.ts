import { createHash } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import { unauthenticated, type Principal } from "../domain";
import type { AuthConfig, CertificateField } from "./auth-config";
import type { JwtVerifier } from "./jwt-verifier";

/** What a call brings to prove who it is. */
export interface Credentials {
  /** The `authorization` header, if any: `Bearer <token>`, an API key or a JWT. */
  authorization?: string;
  /** The client certificate, when the TLS handshake verified one against the client CA. */
  certificate?: PeerCertificate;
}

export type Authenticate = (credentials: Credentials) => Promise<Principal>;

/**
 * Turns credentials into a principal. A bearer token is looked up by its SHA-256 among the API
 * keys (the file holds hashes only, so a leaked file leaks no token), else verified as a JWT if
 * JWT is configured; a call without a token is named by its verified client certificate. Roles
 * are the token's or JWT's, and those the file gives the principal by name.
 */
export function createAuthenticator(config: AuthConfig, jwt: JwtVerifier | undefined): Authenticate {
  const byHash = new Map(config.tokens.map((t) => [t.sha256.toString("base64"), t]));
  const withRoles = (name: string, roles: readonly string[]): Principal => {
    const extra = config.roles.get(name);
    return { name, roles: extra ? [...new Set([...roles, ...extra])] : roles };
  };
  return async ({ authorization, certificate }) => {
    if (authorization !== undefined) {
      const token = bearerToken(authorization);
      const key = byHash.get(createHash("sha256").update(token).digest("base64"));
      if (key) return withRoles(key.principal, key.roles);
      if (!jwt) throw unauthenticated("the bearer token is not known");
      if (!looksLikeJwt(token)) throw unauthenticated("the bearer token is neither a known API key nor a JWT");
      const principal = await jwt.verify(token);
      return withRoles(principal.name, principal.roles);
    }
    if (certificate) {
      const name = certificateName(certificate, config.certificatePrincipal);
      if (name === undefined) throw unauthenticated(`the client certificate has no ${config.certificatePrincipal} to name its principal`);
      return withRoles(name, []);
    }
    throw unauthenticated("the call carries no credentials: send authorization: Bearer <token>, or a client certificate");
  };
}

function bearerToken(header: string): string {
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (!match) throw unauthenticated("the authorization header must be Bearer <token>");
  return match[1];
}

function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

/** The certificate's subject common name, or its first subject alternative name of a kind. */
export function certificateName(certificate: PeerCertificate, field: CertificateField): string | undefined {
  if (field === "subject.CN") {
    const cn = certificate.subject?.CN as string | string[] | undefined;
    const name = Array.isArray(cn) ? cn[0] : cn;
    return name === undefined || name.length === 0 ? undefined : name;
  }
  const kind = { "san.dns": "DNS", "san.uri": "URI", "san.email": "email" }[field];
  // Node writes them as `DNS:a.example, URI:spiffe://x, email:a@b`; quoted when they hold a comma.
  for (const entry of (certificate.subjectaltname ?? "").split(/, (?=[A-Za-z ]+:)/)) {
    const colon = entry.indexOf(":");
    if (entry.slice(0, colon) !== kind) continue;
    const value = entry.slice(colon + 1);
    if (!value.startsWith('"')) return value;
    try {
      return JSON.parse(value) as string;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

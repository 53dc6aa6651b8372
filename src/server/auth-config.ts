import { PERMISSIONS, type Permission, type Rule } from "../domain";
import { parse as parseYaml } from "yaml";

/**
 * The security configuration file (YAML or JSON): who the callers are (tokens, JWT, client
 * certificates) and what they may do (rules). See examples/security/auth.yaml.
 */
export interface AuthConfig {
  /** API keys: the SHA-256 of each token, never the token itself. */
  tokens: TokenEntry[];
  jwt?: JwtSettings;
  /** Which part of a verified client certificate names its principal. */
  certificatePrincipal: CertificateField;
  /** Roles given to a principal however it authenticated, beside those its token or JWT carries. */
  roles: ReadonlyMap<string, readonly string[]>;
  /** Services that answer callers without credentials. */
  publicServices: ReadonlySet<PublicService>;
  rules: Rule[];
}

export interface TokenEntry {
  principal: string;
  roles: string[];
  /** SHA-256 of the token, 32 bytes. */
  sha256: Buffer;
}

export interface JwtSettings {
  /** A JSON Web Key Set file (reloaded with this file), or an HTTPS URL (cached, refetched for unknown keys). */
  jwks: { file: string } | { url: URL };
  issuer: string;
  audience: string;
  clockToleranceSeconds: number;
  /** The claim that names the principal, a dotted path (`sub`, `client_id`). */
  principalClaim: string;
  /** The claim that lists the roles (an array, or a space-separated string), a dotted path (`realm_access.roles`). */
  rolesClaim: string;
  /** Accepted signature algorithms; `none` never is. */
  algorithms: string[];
}

export type CertificateField = "subject.CN" | "san.dns" | "san.uri" | "san.email";
export type PublicService = "health" | "reflection";

const CERTIFICATE_FIELDS: readonly CertificateField[] = ["subject.CN", "san.dns", "san.uri", "san.email"];
const PUBLIC_SERVICES: readonly PublicService[] = ["health", "reflection"];
const ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

export class AuthConfigError extends Error {}

/** Parses and checks the file's text; every mistake is an AuthConfigError naming its place. */
export function parseAuthConfig(text: string, file: string): AuthConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text); // YAML is a superset of JSON: one parser for both
  } catch (e) {
    throw new AuthConfigError(`${file}: not valid YAML or JSON: ${(e as Error).message}`);
  }
  const at = (path: string) => `${file}: ${path}`;
  const root = object(doc ?? {}, at("the document"));
  known(root, ["tokens", "jwt", "clientCertificates", "roles", "publicServices", "rules"], at("the document"));

  const tokens = array(root.tokens ?? [], at("tokens")).map((t, i): TokenEntry => {
    const where = at(`tokens[${i}]`);
    const entry = object(t, where);
    known(entry, ["principal", "roles", "sha256"], where);
    const hash = nonEmpty(entry.sha256, `${where}.sha256`);
    if (!/^[0-9a-fA-F]{64}$/.test(hash)) {
      throw new AuthConfigError(`${where}.sha256: must be 64 hex digits, the SHA-256 of the token (eventstore token makes one)`);
    }
    return { principal: name(entry.principal, `${where}.principal`), roles: names(entry.roles ?? [], `${where}.roles`), sha256: Buffer.from(hash, "hex") };
  });
  const seen = new Set<string>();
  tokens.forEach((t, i) => {
    const key = t.sha256.toString("hex");
    if (seen.has(key)) throw new AuthConfigError(`${at(`tokens[${i}].sha256`)}: the same token is listed twice`);
    seen.add(key);
  });

  const certificates = root.clientCertificates === undefined ? {} : object(root.clientCertificates, at("clientCertificates"));
  known(certificates, ["principalFrom"], at("clientCertificates"));
  const certificatePrincipal = oneOf(certificates.principalFrom ?? "subject.CN", CERTIFICATE_FIELDS, at("clientCertificates.principalFrom"));

  const rolesDoc = object(root.roles ?? {}, at("roles"));
  const roles = new Map(Object.entries(rolesDoc).map(([p, r]) => [p, names(r, at(`roles.${p}`))]));

  const publicServices = new Set(
    array(root.publicServices ?? PUBLIC_SERVICES, at("publicServices")).map((s, i) => oneOf(s, PUBLIC_SERVICES, at(`publicServices[${i}]`))),
  );

  const rules = array(root.rules ?? [], at("rules")).map((r, i) => parseRule(r, at(`rules[${i}]`)));

  return {
    tokens,
    jwt: root.jwt === undefined ? undefined : parseJwt(root.jwt, at("jwt")),
    certificatePrincipal,
    roles,
    publicServices,
    rules,
  };
}

function parseJwt(value: unknown, where: string): JwtSettings {
  const jwt = object(value, where);
  known(jwt, ["jwksFile", "jwksUrl", "issuer", "audience", "clockToleranceSeconds", "principalClaim", "rolesClaim", "algorithms"], where);
  if ((jwt.jwksFile === undefined) === (jwt.jwksUrl === undefined)) throw new AuthConfigError(`${where}: give one of jwksFile and jwksUrl`);
  let jwks: JwtSettings["jwks"];
  if (jwt.jwksFile !== undefined) jwks = { file: nonEmpty(jwt.jwksFile, `${where}.jwksFile`) };
  else {
    let url: URL;
    try {
      url = new URL(nonEmpty(jwt.jwksUrl, `${where}.jwksUrl`));
    } catch {
      throw new AuthConfigError(`${where}.jwksUrl: not a URL`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new AuthConfigError(`${where}.jwksUrl: must be an https (or http) URL`);
    jwks = { url };
  }
  const tolerance = jwt.clockToleranceSeconds ?? 30;
  if (typeof tolerance !== "number" || !Number.isInteger(tolerance) || tolerance < 0 || tolerance > 3600) {
    throw new AuthConfigError(`${where}.clockToleranceSeconds: an integer number of seconds in 0..3600`);
  }
  const algorithms = array(jwt.algorithms ?? ALGORITHMS, `${where}.algorithms`).map((a, i) => oneOf(a, ALGORITHMS, `${where}.algorithms[${i}]`));
  return {
    jwks,
    issuer: nonEmpty(jwt.issuer, `${where}.issuer`),
    audience: nonEmpty(jwt.audience, `${where}.audience`),
    clockToleranceSeconds: tolerance,
    principalClaim: nonEmpty(jwt.principalClaim ?? "sub", `${where}.principalClaim`),
    rolesClaim: nonEmpty(jwt.rolesClaim ?? "roles", `${where}.rolesClaim`),
    algorithms,
  };
}

function parseRule(value: unknown, where: string): Rule {
  const rule = object(value, where);
  known(rule, ["principals", "roles", "permissions", "streams", "categories", "subscriptions", "projections"], where);
  const principals = names(rule.principals ?? [], `${where}.principals`);
  const roles = names(rule.roles ?? [], `${where}.roles`);
  if (principals.length === 0 && roles.length === 0) throw new AuthConfigError(`${where}: names no principals and no roles: it would grant nothing`);
  const permissions = array(rule.permissions, `${where}.permissions`).map((p, i) => oneOf(p, PERMISSIONS, `${where}.permissions[${i}]`) as Permission);
  if (permissions.length === 0) throw new AuthConfigError(`${where}.permissions: at least one permission`);
  return {
    principals,
    roles,
    permissions,
    streams: patterns(rule.streams ?? [], `${where}.streams`),
    categories: names(rule.categories ?? [], `${where}.categories`),
    subscriptions: patterns(rule.subscriptions ?? [], `${where}.subscriptions`),
    projections: patterns(rule.projections ?? [], `${where}.projections`),
  };
}

function object(value: unknown, where: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new AuthConfigError(`${where}: must be a mapping`);
  return value as Record<string, unknown>;
}

function array(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new AuthConfigError(`${where}: must be a list`);
  return value;
}

function known(value: Record<string, unknown>, keys: string[], where: string): void {
  for (const k of Object.keys(value)) {
    if (!keys.includes(k)) throw new AuthConfigError(`${where}: unknown key ${JSON.stringify(k)} (known: ${keys.join(", ")})`);
  }
}

function nonEmpty(value: unknown, where: string): string {
  if (typeof value !== "string" || value.length === 0) throw new AuthConfigError(`${where}: must be a non-empty string`);
  return value;
}

function name(value: unknown, where: string): string {
  const s = nonEmpty(value, where);
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new AuthConfigError(`${where}: must not contain control characters`);
  return s;
}

function names(value: unknown, where: string): string[] {
  return array(value, where).map((v, i) => name(v, `${where}[${i}]`));
}

/** `*`, `prefix*` or an exact name: a `*` anywhere but at the end would not mean what it says. */
function patterns(value: unknown, where: string): string[] {
  return names(value, where).map((p, i) => {
    if (p.slice(0, -1).includes("*")) throw new AuthConfigError(`${where}[${i}]: "*" may only end a pattern (got ${JSON.stringify(p)})`);
    return p;
  });
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], where: string): T {
  if (typeof value !== "string" || !allowed.includes(value as T)) {
    throw new AuthConfigError(`${where}: must be one of ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
  }
  return value as T;
}

import { AuthConfigError, parseAuthConfig } from "../../src/server/auth-config";

/** Mistakes in the auth file stop the start with the place they are at. */
test.each([
  ["tokens: {}", "f.yaml: tokens: must be a list"],
  ["tokens: [{principal: a, sha256: abc}]", "tokens[0].sha256: must be 64 hex digits"],
  [`tokens: [{principal: a, sha256: ${"a".repeat(64)}}, {principal: b, sha256: ${"A".repeat(64)}}]`, "tokens[1].sha256: the same token is listed twice"],
  ["tokens: [{principal: a, token: secret}]", `tokens[0]: unknown key "token"`],
  ["rules: [{principals: [a], permissions: [reed]}]", "rules[0].permissions[0]: must be one of read, write"],
  ["rules: [{permissions: [read]}]", "rules[0]: names no principals and no roles"],
  ["rules: [{principals: [a], permissions: []}]", "rules[0].permissions: at least one permission"],
  ["rules: [{principals: [a], permissions: [read], streams: ['a*b']}]", `rules[0].streams[0]: "*" may only end a pattern`],
  ["jwt: {issuer: i, audience: a}", "jwt: give one of jwksFile and jwksUrl"],
  ["jwt: {jwksUrl: 'ftp://x', issuer: i, audience: a}", "jwt.jwksUrl: must be an https (or http) URL"],
  ["jwt: {jwksFile: k.json, audience: a}", "jwt.issuer: must be a non-empty string"],
  ["jwt: {jwksFile: k.json, issuer: i, audience: a, algorithms: [none]}", "jwt.algorithms[0]: must be one of RS256"],
  ["clientCertificates: {principalFrom: subject.O}", "clientCertificates.principalFrom: must be one of subject.CN"],
  ["publicServices: [admin]", "publicServices[0]: must be one of health, reflection"],
  ["rules: [", "f.yaml: not valid YAML or JSON"],
  ["surprise: 1", `the document: unknown key "surprise"`],
])("%s", (text, message) => {
  expect(() => parseAuthConfig(text, "f.yaml")).toThrow(AuthConfigError);
  expect(() => parseAuthConfig(text, "f.yaml")).toThrow(message);
});

test("an empty file is a valid one that lets nobody in, with health and reflection public", () => {
  const config = parseAuthConfig("", "f.yaml");
  expect(config).toMatchObject({ tokens: [], rules: [] });
  expect([...config.publicServices]).toEqual(["health", "reflection"]);
});

test("JSON is YAML too", () => {
  const config = parseAuthConfig(JSON.stringify({ rules: [{ roles: ["r"], permissions: ["read"], categories: ["c"] }] }), "f.json");
  expect(config.rules[0]).toMatchObject({ roles: ["r"], permissions: ["read"], categories: ["c"] });
});

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createPolicy } from "../../src/domain";
import { parseAuthConfig } from "../../src/server/auth-config";

/** The worked example in examples/security/auth.yaml is a file the server accepts, meaning what it says. */
const FILE = join(__dirname, "../../examples/security/auth.yaml");
const config = parseAuthConfig(readFileSync(FILE, "utf8"), FILE);
const policy = createPolicy(config.rules);
const orders = { name: "orders-service", roles: ["orders-writer"] };
const reporting = { name: "reporting", roles: [] };

test("parses, with its keys, JWT settings, certificate field and rules", () => {
  expect(config.tokens.map((t) => t.principal)).toEqual(["orders-service", "reporting"]);
  expect(config.jwt).toMatchObject({ audience: "eventstore", rolesClaim: "realm_access.roles", clockToleranceSeconds: 30 });
  expect(config.certificatePrincipal).toBe("subject.CN");
  expect([...config.publicServices]).toEqual(["health", "reflection"]);
});

test("orders-service writes its category and nothing else, and may not read the whole log", () => {
  expect(policy.allows(orders, "write", { kind: "stream", name: "order-42" })).toBe(true);
  expect(policy.allows(orders, "write", { kind: "stream", name: "invoice-1" })).toBe(false);
  expect(policy.allows(orders, "read", { kind: "log", category: "order" })).toBe(true);
  expect(policy.allows(orders, "read", { kind: "log" })).toBe(false);
  expect(policy.allows(orders, "delete", { kind: "stream", name: "order-42" })).toBe(false);
  expect(policy.allows(orders, "checkpoint", { kind: "subscription", name: "orders-projector" })).toBe(true);
});

test("reporting reads everything, writes nothing, and runs only its own projections", () => {
  expect(policy.allows(reporting, "read", { kind: "log" })).toBe(true);
  expect(policy.allows(reporting, "write", { kind: "stream", name: "order-42" })).toBe(false);
  expect(policy.allows(reporting, "projection.run", { kind: "projection", name: "reporting-daily" })).toBe(true);
  expect(policy.allows(reporting, "projection.run", { kind: "projection", name: "orders-totals" })).toBe(false);
});

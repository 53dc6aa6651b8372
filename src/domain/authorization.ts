import { categoryOf } from "./stream-name";

/**
 * What a caller may be allowed to do. Stream permissions apply to stream names, `checkpoint` to
 * subscription names, `projection.*` to projection names; `admin` is every permission on
 * everything.
 */
export type Permission =
  | "read"
  | "write"
  | "delete"
  | "subscribe"
  | "checkpoint"
  | "projection.read"
  | "projection.run"
  | "projection.admin"
  | "admin";

export const PERMISSIONS: readonly Permission[] = [
  "read", "write", "delete", "subscribe", "checkpoint", "projection.read", "projection.run", "projection.admin", "admin",
];

/** Who is calling, as authentication established it. */
export interface Principal {
  name: string;
  roles: readonly string[];
}

/**
 * What a permission is asked on. `log` is a selection of the whole log (ReadAll, ListStreams,
 * a whole-log Subscribe): all of it, or the streams of one category or name prefix.
 */
export type Target =
  | { kind: "stream"; name: string }
  | { kind: "log"; category?: string; prefix?: string }
  | { kind: "subscription"; name: string }
  | { kind: "projection"; name: string };

/**
 * A name pattern: `*` is every name, `order-*` every name that starts with `order-`, anything
 * else that name only.
 */
export type NamePattern = string;

/** Grants `permissions` on the named resources to the named principals and to holders of the roles. */
export interface Rule {
  principals: readonly string[];
  roles: readonly string[];
  permissions: readonly Permission[];
  streams: readonly NamePattern[];
  /** Whole categories: the streams named `c` or starting with `c-`. */
  categories: readonly string[];
  subscriptions: readonly NamePattern[];
  projections: readonly NamePattern[];
}

export interface Policy {
  allows(principal: Principal, permission: Permission, target: Target): boolean;
}

/** The policy of a server without authentication: it serves only loopback, or was told `--insecure`. */
export const ALLOW_ALL: Policy = { allows: () => true };

/**
 * A policy that allows what some rule grants, and nothing else. The rules that apply to a
 * principal are found once per principal and role set, not on every call.
 */
export function createPolicy(rules: readonly Rule[]): Policy {
  const applicable = new Map<string, Rule[]>();
  const rulesOf = (p: Principal): Rule[] => {
    const key = `${p.name}\u0000${p.roles.join("\u0000")}`;
    let found = applicable.get(key);
    if (!found) {
      found = rules.filter((r) => r.principals.includes(p.name) || r.principals.includes("*") || r.roles.some((role) => p.roles.includes(role)));
      if (applicable.size > 10_000) applicable.clear(); // bounded: principals come from tokens
      applicable.set(key, found);
    }
    return found;
  };
  return {
    allows(principal, permission, target) {
      return rulesOf(principal).some(
        (r) => r.permissions.includes("admin") || (r.permissions.includes(permission) && covers(r, target)),
      );
    },
  };
}

function covers(rule: Rule, target: Target): boolean {
  switch (target.kind) {
    case "stream":
      return rule.streams.some((p) => matches(p, target.name)) || rule.categories.includes(categoryOf(target.name));
    case "subscription":
      return rule.subscriptions.some((p) => matches(p, target.name));
    case "projection":
      return rule.projections.some((p) => matches(p, target.name));
    case "log":
      return coversLog(rule, target);
  }
}

/**
 * A selection of the log is covered only when every stream it could ever hold is: so a caller
 * never learns of a stream it may not read, whether by its events, by a count or by timing.
 */
function coversLog(rule: Rule, { category, prefix }: { category?: string; prefix?: string }): boolean {
  if (rule.streams.includes("*")) return true;
  if (category !== undefined) {
    // The category's streams are `c` and `c-...`: a prefix pattern covers both when `c` starts with it.
    return rule.categories.includes(category) || rule.streams.some((p) => p.endsWith("*") && category.startsWith(p.slice(0, -1)));
  }
  if (prefix !== undefined) {
    return (
      rule.streams.some((p) => p.endsWith("*") && prefix.startsWith(p.slice(0, -1))) ||
      rule.categories.some((c) => prefix.startsWith(`${c}-`))
    );
  }
  return false;
}

function matches(pattern: NamePattern, name: string): boolean {
  return pattern.endsWith("*") ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

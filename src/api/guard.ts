import { createContextKey, type HandlerContext } from "@connectrpc/connect";
import {
  isEventStoreError,
  permissionDenied,
  unauthenticated,
  type Permission,
  type Policy,
  type Principal,
  type RecordedEvent,
  type Target,
} from "../domain";

/**
 * Who made the call: the server's edge sets, for every call, a function that authenticates it
 * (once, on first use: a call that needs no permission pays nothing). It rejects with an
 * UNAUTHENTICATED error when the call's credentials are missing or do not hold.
 */
export type Caller = () => Promise<Principal>;

export const CALLER = createContextKey<Caller>(() => Promise.reject(unauthenticated("the call carries no credentials")), {
  description: "the authenticated caller",
});

/** One line per denied call, delete, tombstone, checkpoint move and projection control. */
export type Audit = (action: string, fields: { principal: string; target?: string; outcome: string; [key: string]: unknown }) => void;

/**
 * Asks the policy before any work of a call. Every service method calls it first; the principal
 * it answers is the one to name in audit lines.
 */
export interface Guard {
  authorize(ctx: HandlerContext, permission: Permission, target: Target): Promise<Principal>;
  /**
   * Each resolved link event the caller may not read is given back as the link itself: a
   * link must not show what its target stream holds.
   */
  readable(principal: Principal, links: RecordedEvent[], resolved: RecordedEvent[]): RecordedEvent[];
  /** Runs a change the audit log records, with its outcome, whether it succeeds or not. */
  audited<T>(action: string, principal: Principal, target: Target, work: () => Promise<T>, fields?: Record<string, unknown>): Promise<T>;
}

export const ANONYMOUS: Principal = { name: "anonymous", roles: [] };

export interface GuardOptions {
  /**
   * The rules in force (they may be reloaded). Undefined: no authentication at all (a server on
   * loopback, or told `--insecure`): every caller is anonymous and may do anything.
   */
  policy?: () => Policy;
  audit: Audit;
}

export function createGuard({ policy, audit }: GuardOptions): Guard {
  async function audited<T>(action: string, principal: Principal, target: Target, work: () => Promise<T>, extra: Record<string, unknown> = {}): Promise<T> {
    const fields = { principal: principal.name, target: describeTarget(target), ...extra };
    try {
      const result = await work();
      audit(action, { ...fields, outcome: "OK" });
      return result;
    } catch (e) {
      audit(action, { ...fields, outcome: isEventStoreError(e) ? e.kind : "ERROR" });
      throw e;
    }
  }
  if (!policy) {
    const anonymous = Promise.resolve(ANONYMOUS);
    return { authorize: () => anonymous, readable: (_p, _links, resolved) => resolved, audited };
  }
  return {
    async authorize(ctx, permission, target) {
      let principal: Principal;
      try {
        principal = await ctx.values.get(CALLER)();
      } catch (e) {
        audit("denied", { principal: ANONYMOUS.name, method: methodOf(ctx), outcome: "UNAUTHENTICATED", reason: e instanceof Error ? e.message : String(e) });
        throw e;
      }
      if (policy().allows(principal, permission, target)) return principal;
      const named = describeTarget(target);
      audit("denied", { principal: principal.name, method: methodOf(ctx), permission, target: named, outcome: "PERMISSION_DENIED" });
      throw permissionDenied(principal.name, permission, named);
    },
    readable(principal, links, resolved) {
      const rules = policy();
      return resolved.map((e, i) =>
        e === links[i] || rules.allows(principal, "read", { kind: "stream", name: e.stream }) ? e : links[i],
      );
    },
    audited,
  };
}

export function describeTarget(target: Target): string {
  switch (target.kind) {
    case "stream":
      return `stream ${target.name}`;
    case "subscription":
      return `subscription ${target.name}`;
    case "projection":
      return `projection ${target.name}`;
    case "log":
      if (target.category !== undefined) return `category ${target.category}`;
      if (target.prefix !== undefined) return `streams with prefix ${target.prefix}`;
      return "the whole log";
  }
}

function methodOf(ctx: HandlerContext): string {
  return `${ctx.service.typeName}/${ctx.method.name}`;
}

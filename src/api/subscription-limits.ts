import { EventStoreError } from "../domain";

export interface SubscriptionLimitSettings {
  /** Most open subscriptions on this server. */
  maxPerServer: number;
  /** Most open subscriptions of one principal, by name. */
  maxPerPrincipal: number;
}

export interface SubscriptionLimits {
  /**
   * Counts one more open subscription of `principal`, or refuses it with LIMIT_EXCEEDED when
   * either maximum is reached. The answer gives the place back; calling it again does nothing.
   */
  open(principal: string): () => void;
  /** Open subscriptions now, of one principal or of everyone. */
  count(principal?: string): number;
}

/**
 * The open subscriptions of one server, counted per principal. Every live subscriber costs a
 * filter run and a write for each new event, so their number bounds what an append costs the
 * server; one principal's share keeps one service from taking it all.
 */
export function createSubscriptionLimits(settings: SubscriptionLimitSettings): SubscriptionLimits {
  const byPrincipal = new Map<string, number>();
  let total = 0;
  return {
    open(principal) {
      const held = byPrincipal.get(principal) ?? 0;
      if (held >= settings.maxPerPrincipal) {
        throw tooMany("max-subscriptions-per-principal", settings.maxPerPrincipal, `${principal} has ${held} open subscriptions, the most one principal may hold`);
      }
      if (total >= settings.maxPerServer) {
        throw tooMany("max-subscriptions", settings.maxPerServer, `the server has ${total} open subscriptions, the most it holds`);
      }
      byPrincipal.set(principal, held + 1);
      total++;
      let open = true;
      return () => {
        if (!open) return;
        open = false;
        total--;
        const left = byPrincipal.get(principal)! - 1;
        if (left === 0) byPrincipal.delete(principal);
        else byPrincipal.set(principal, left);
      };
    },
    count: (principal) => (principal === undefined ? total : byPrincipal.get(principal) ?? 0),
  };
}

/** LIMIT_EXCEEDED (RESOURCE_EXHAUSTED), naming the setting that says how many. */
function tooMany(setting: string, max: number, message: string): EventStoreError {
  return new EventStoreError("LIMIT_EXCEEDED", `subscriptions: ${message} (${max}, --${setting})`, {
    field: "subscriptions",
    limit: String(max),
    value: String(max + 1),
    setting,
  });
}

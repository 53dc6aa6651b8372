import type { ConsumerLag } from "../event-store";
import type { Sql } from "./sql";

/**
 * How far each durable subscription and projection is behind the head: in positions (events,
 * but for the numbers a failed batch left unused) and in the age of the oldest event it has not
 * handled, one index probe each. At most `limit` of each kind, those furthest behind, so that a
 * scrape costs the same however many names the database holds and no pile of fresh names can
 * hide a consumer that lags. Idle projections (not meant to run) are left out.
 */
export async function consumerLag(sql: Sql, limit: number): Promise<ConsumerLag[]> {
  const rows = await sql<{ kind: "subscription" | "projection"; name: string; events: bigint; seconds: number }[]>`
    select c.kind, c.name, greatest(l.position - c.position, 0) as events,
      coalesce(extract(epoch from clock_timestamp() - (
        select e.stored_at from eventstore.events e where e.position > c.position order by e.position limit 1
      )), 0)::float8 as seconds
    from (
      (select 'subscription' as kind, name, position from eventstore.subscription_checkpoints order by position, name limit ${limit})
      union all
      (select 'projection', name, position from eventstore.projections where status <> 'idle' order by position, name limit ${limit})
    ) c cross join eventstore.log l`;
  return rows.map((r) => ({ kind: r.kind, name: r.name, events: Number(r.events), seconds: Math.max(0, r.seconds) }));
}

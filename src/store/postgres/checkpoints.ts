import { invalidArgument } from "../../domain";
import type { Checkpoint } from "../event-store";
import type { Sql } from "./sql";

/**
 * Stores a durable subscription's position. One past the log's head is refused: no consumer
 * can have handled an event there, and a subscription resumed from it would skip every event
 * until the log got that far (at 2^63-1, for ever).
 */
export async function commitCheckpoint(sql: Sql, name: string, position: bigint): Promise<void> {
  const rows = await sql<{ head: bigint; committed: boolean }[]>`
    with committed as (
      insert into eventstore.subscription_checkpoints (name, position)
        select ${name}, ${position} from eventstore.log where ${position} <= position
        on conflict (name) do update set position = excluded.position, committed_at = clock_timestamp()
        returning 1
    )
    select position as head, exists (select 1 from committed) as committed from eventstore.log`;
  if (!rows[0].committed) throw invalidArgument("position", `${position} is past the log's head (${rows[0].head}): no event there has been handled`, { head: String(rows[0].head) });
}

export async function getCheckpoint(sql: Sql, name: string): Promise<Checkpoint | undefined> {
  const [row] = await sql<{ position: bigint; committed_at: Date }[]>`
    select position, committed_at from eventstore.subscription_checkpoints where name = ${name}`;
  return row ? { position: row.position, committedAt: row.committed_at } : undefined;
}

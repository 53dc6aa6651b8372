import type { Checkpoint } from "../event-store";
import type { Sql } from "./sql";

export async function commitCheckpoint(sql: Sql, name: string, position: bigint): Promise<void> {
  await sql`
    insert into eventstore.subscription_checkpoints (name, position) values (${name}, ${position})
    on conflict (name) do update set position = excluded.position, committed_at = clock_timestamp()`;
}

export async function getCheckpoint(sql: Sql, name: string): Promise<Checkpoint | undefined> {
  const [row] = await sql<{ position: bigint; committed_at: Date }[]>`
    select position, committed_at from eventstore.subscription_checkpoints where name = ${name}`;
  return row ? { position: row.position, committedAt: row.committed_at } : undefined;
}

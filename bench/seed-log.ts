import postgres from "postgres";

const STREAM_EVENTS = 100;

/**
 * Writes a log of `events` events (a multiple of 100) straight into an empty store's tables, in
 * SQL, far faster than appends: positions 1..N in streams `catch-up-K` of 100 events (revisions
 * 0..99), each of the shape of payload.ts's events (an order as JSON, 219 bytes against their
 * 197, and `correlationId`/`source` metadata) with a random id; the stream rows and the log head
 * to match. Then the same rows, in the same order, into the raw baseline's bench.events, and a
 * VACUUM ANALYZE of both, so that neither side's first read pays for hint bits or meets
 * autovacuum.
 */
export async function seedLog(url: string, events: number): Promise<void> {
  if (events % STREAM_EVENTS !== 0) throw new Error(`the log's size must be a multiple of ${STREAM_EVENTS}`);
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [{ position }] = await sql<{ position: string }[]>`select position::text from eventstore.log`;
    if (position !== "0") throw new Error(`the log must be empty to be seeded (head ${position})`);
    // One transaction for the whole log; nothing else reads it before it commits.
    await sql`set synchronous_commit = off`;
    await sql.begin(async (tx) => {
      await tx`
        insert into eventstore.events (position, stream, revision, id, type, content_type, data, metadata, stored_at)
        select g, 'catch-up-' || (g - 1) / ${STREAM_EVENTS}, (g - 1) % ${STREAM_EVENTS}, gen_random_uuid(),
               'OrderPlaced', 'application/json',
               convert_to(json_build_object(
                 'orderId', md5('order' || g)::uuid, 'customerId', 'customer-' || g % 1000,
                 'amount', 1000 + g % 9000, 'currency', 'EUR',
                 'items', json_build_array(json_build_object('sku', 'SKU-' || lpad((g % 10000)::text, 5, '0'), 'quantity', 1 + g % 5)),
                 'note', 'benchmark payload of a realistic size')::text, 'UTF8'),
               jsonb_build_object('correlationId', md5('order' || g)::uuid, 'source', 'bench'),
               now()
          from generate_series(1, ${events}::bigint) as g`;
      await tx`
        insert into eventstore.streams (name, revision, position)
        select 'catch-up-' || k, ${STREAM_EVENTS - 1}, (k + 1) * ${STREAM_EVENTS}
          from generate_series(0, ${events / STREAM_EVENTS - 1}::bigint) as k`;
      await tx`update eventstore.log set position = ${events}`;
      // As an append would: a server's live feed takes the new head without reading the log.
      await tx`select pg_notify('eventstore_events', ${String(events)})`;
    });
    await sql`
      insert into bench.events (stream, revision, id, type, content_type, data, metadata, stored_at)
      select stream, revision, id, type, content_type, data, metadata, stored_at from eventstore.events order by position`;
    await sql`vacuum (analyze) eventstore.events, eventstore.streams, bench.events`;
  } finally {
    await sql.end();
  }
}

import postgres from "postgres";
import { COLUMNS, RAW_CHANNEL } from "./raw-baseline";

type Sql = postgres.Sql<{ bigint: bigint }>;

export interface RawFollower {
  end(): Promise<void>;
}

/**
 * The raw twin of the server's live feed with one subscriber in this process: LISTEN (on a
 * connection of its own), and on each notification read every row after the last one seen, all
 * columns, in pages of 1,000 (reads coalesced like the feed's). `onEvent` gets each row's id as
 * soon as its page arrives. Positions here are an identity column: they are only gap-free for
 * this reader because one connection writes them, one statement at a time.
 */
export async function followRawLog(url: string, onEvent: (id: string) => void): Promise<RawFollower> {
  const sql = postgres(url, {
    max: 1,
    onnotice: () => {},
    types: { bigint: postgres.BigInt },
    connection: { application_name: "bench-raw-live" },
  }) as unknown as Sql;
  let after = (await sql<{ head: bigint }[]>`select coalesce(max(position), 0) as head from bench.events`)[0].head;
  let wanted = false;
  let reading: Promise<void> | undefined;
  const read = async () => {
    while (wanted) {
      wanted = false;
      for (;;) {
        const rows = await sql<{ position: bigint; id: string }[]>`
          select ${sql.unsafe(COLUMNS)} from bench.events where position > ${after} order by position limit 1000`;
        for (const row of rows) onEvent(row.id);
        if (rows.length > 0) after = rows[rows.length - 1].position;
        if (rows.length < 1000) break;
      }
    }
  };
  const wake = () => {
    wanted = true;
    reading ??= read().finally(() => {
      reading = undefined;
      if (wanted) wake();
    });
  };
  const listening = await sql.listen(RAW_CHANNEL, wake);
  return {
    async end() {
      await listening.unlisten();
      await reading;
      await sql.end({ timeout: 5 });
    },
  };
}

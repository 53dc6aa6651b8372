import postgres from "postgres";
import type { BenchEvent } from "./payload";

type Sql = postgres.Sql<{ bigint: bigint }>;

/** The same work as our server, done by postgres.js straight on a plain table. */
export interface RawClient {
  /** One single-row INSERT. */
  insert(stream: string, revision: bigint, event: BenchEvent): Promise<void>;
  /** One single-row INSERT and a NOTIFY of its position, in one statement (one transaction). */
  insertNotify(stream: string, revision: bigint, event: BenchEvent): Promise<void>;
  /**
   * One single-row INSERT at `revision` (with a NOTIFY in the same statement if `notify`);
   * false when that revision of the stream is taken (the unique index refuses it).
   */
  tryInsert(stream: string, revision: bigint, event: BenchEvent, notify: boolean): Promise<boolean>;
  /** The stream's last revision (`max(revision)`); undefined when it has none. */
  streamRevision(stream: string): Promise<bigint | undefined>;
  /** One multi-row INSERT of a batch, from arrays through unnest. */
  insertBatch(stream: string, firstRevision: bigint, events: BenchEvent[]): Promise<void>;
  /** The same, and a NOTIFY of the batch's last position, in one statement. */
  insertBatchNotify(stream: string, firstRevision: bigint, events: BenchEvent[]): Promise<void>;
  /** `select ... where stream = $1 order by revision`, in one query; answers the row count. */
  readStream(stream: string): Promise<number>;
  /** The whole table by position, in pages of `pageSize`; answers the row count. */
  readAll(pageSize: number): Promise<number>;
  end(): Promise<void>;
}

export interface RawBaseline {
  /** Creates bench.events, shaped like eventstore.events but with an identity position. */
  setup(): Promise<void>;
  /** A client on a connection of its own, once connected. */
  client(): Promise<RawClient>;
}

// Element type oids, as the server sends its arrays.
const TEXT = 25;
const BYTEA = 17;
const UUID = 2950;
const JSONB = 3802;

export const COLUMNS = "position, stream, revision, id, type, content_type, data, metadata, stored_at";
/** The channel of insertNotify and insertBatchNotify. */
export const RAW_CHANNEL = "bench_events";

export function createRawBaseline(url: string): RawBaseline {
  const connect = (): Sql =>
    postgres(url, {
      max: 1,
      onnotice: () => {},
      types: { bigint: postgres.BigInt },
      connection: { application_name: "bench-raw" },
    }) as unknown as Sql;
  return {
    async setup() {
      const sql = connect();
      try {
        await sql.unsafe(`
          create schema bench;
          create table bench.events (
            position bigint generated always as identity primary key,
            stream text collate "C" not null,
            revision bigint not null,
            id uuid not null,
            type text not null,
            content_type text not null,
            data bytea not null,
            metadata jsonb not null,
            stored_at timestamptz not null default now(),
            unique (stream, revision),
            unique (id)
          );`);
      } finally {
        await sql.end();
      }
    },
    async client() {
      const sql = connect();
      // postgres.js learns the array types on connecting; an array parameter sent before that
      // goes out as its element type.
      await sql`select 1`;
      return createRawClient(sql);
    },
  };
}

function createRawClient(sql: Sql): RawClient {
  return {
    async insert(stream, revision, e) {
      await sql`
        insert into bench.events (stream, revision, id, type, content_type, data, metadata)
        values (${stream}, ${revision}, ${e.id}, ${e.type}, ${e.contentType}, ${e.data}, ${sql.json(e.metadata)})`;
    },
    async insertNotify(stream, revision, e) {
      await sql`
        with inserted as (
          insert into bench.events (stream, revision, id, type, content_type, data, metadata)
          values (${stream}, ${revision}, ${e.id}, ${e.type}, ${e.contentType}, ${e.data}, ${sql.json(e.metadata)})
          returning position)
        select pg_notify('bench_events', position::text) from inserted`;
    },
    async tryInsert(stream, revision, e, notify) {
      try {
        await (notify ? this.insertNotify(stream, revision, e) : this.insert(stream, revision, e));
        return true;
      } catch (err) {
        if ((err as { code?: string }).code === "23505") return false;
        throw err;
      }
    },
    async streamRevision(stream) {
      const [row] = await sql<{ revision: bigint | null }[]>`select max(revision) as revision from bench.events where stream = ${stream}`;
      return row.revision ?? undefined;
    },
    async insertBatch(stream, firstRevision, events) {
      await sql`insert into bench.events (stream, revision, id, type, content_type, data, metadata) ${batchRows(sql, stream, firstRevision, events)}`;
    },
    async insertBatchNotify(stream, firstRevision, events) {
      await sql`
        with inserted as (
          insert into bench.events (stream, revision, id, type, content_type, data, metadata)
          ${batchRows(sql, stream, firstRevision, events)}
          returning position)
        select pg_notify(${RAW_CHANNEL}, max(position)::text) from inserted`;
    },
    async readStream(stream) {
      const rows = await sql`select ${sql.unsafe(COLUMNS)} from bench.events where stream = ${stream} order by revision`;
      return rows.length;
    },
    async readAll(pageSize) {
      let n = 0;
      let after = 0n;
      for (;;) {
        const rows = await sql<{ position: bigint }[]>`
          select ${sql.unsafe(COLUMNS)} from bench.events where position > ${after} order by position limit ${pageSize}`;
        n += rows.length;
        if (rows.length < pageSize) return n;
        after = rows[rows.length - 1].position;
      }
    },
    end: () => sql.end({ timeout: 5 }),
  };
}

function batchRows(sql: Sql, stream: string, firstRevision: bigint, events: BenchEvent[]) {
  return sql`
    select ${stream}, ${firstRevision} + u.k - 1, u.id, u.type, u.content_type, u.data, u.metadata
      from unnest(
        ${sql.array(events.map((e) => e.id), UUID)}, ${sql.array(events.map((e) => e.type), TEXT)},
        ${sql.array(events.map((e) => e.contentType), TEXT)}, ${sql.array(events.map((e) => e.data), BYTEA)},
        ${sql.array(events.map((e) => e.metadata) as never[], JSONB)}
      ) with ordinality as u(id, type, content_type, data, metadata, k)`;
}

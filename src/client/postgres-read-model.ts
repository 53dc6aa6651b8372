import { randomUUID } from "node:crypto";
import type postgres from "postgres";
import type { AppliedPosition, ReadModel } from "./read-model";

/** A row's columns by name, as postgres.js sends them. */
export type Row = Record<string, unknown>;

/** A change to a read-model table, stacked by a handler. */
export type TableChange =
  | { op: "insert"; values: Row }
  | { op: "update"; values: Row; where: Row }
  | { op: "remove"; where: Row };

export const insert = (values: Row): TableChange => ({ op: "insert", values });
export const update = (values: Row, where: Row): TableChange => ({ op: "update", values, where });
export const remove = (where: Row): TableChange => ({ op: "remove", where });

export interface PostgresReadModelOptions {
  /** A postgres.js connection to the read model's database (any database; not the event store's). */
  sql: postgres.Sql<any>;
  table: string;
  /** Unset: the connection's current schema. */
  schema?: string;
  /** The table's columns and constraints, as in CREATE TABLE: code, never user input. */
  columns: string;
}

const POSITIONS = "read_model_positions";

/** A connection or a transaction: both run the same queries. */
type Queryable = postgres.Sql<any> | postgres.TransactionSql<any>;

/**
 * A read model that is one PostgreSQL table: handlers stack insert, update and remove changes,
 * and `persist` applies them and records the position they reach in one transaction, in the
 * table `read_model_positions` beside it. Exactly once by position, then: after a crash, the
 * projector finds here which events' changes are in, and skips them.
 */
export function createPostgresReadModel(options: PostgresReadModelOptions): ReadModel<TableChange> {
  const { sql, table, schema } = options;
  const name = (tx: Queryable, relation: string) => (schema === undefined ? tx(relation) : tx`${tx(schema)}.${tx(relation)}`);
  const key = schema === undefined ? table : `${schema}.${table}`;

  const exists = async (relation: string, tx: Queryable = sql) => {
    const [row] = await tx<{ found: boolean }[]>`
      select exists (select 1 from pg_tables
                      where tablename = ${relation} and schemaname = coalesce(${schema ?? null}::text, current_schema())) as found`;
    return row.found;
  };

  return {
    async init() {
      await sql.begin(async (tx) => {
        await tx`create table if not exists ${name(tx, table)} (${tx.unsafe(options.columns)})`;
        await tx`create table if not exists ${name(tx, POSITIONS)} (read_model text primary key, position bigint not null, token text not null)`;
      });
    },
    isInitialized: () => exists(table),
    async reset() {
      if (!(await exists(table))) return;
      await sql.begin(async (tx) => {
        await tx`truncate ${name(tx, table)}`;
        await tx`delete from ${name(tx, POSITIONS)} where read_model = ${key}`;
      });
    },
    async delete() {
      await sql.begin(async (tx) => {
        await tx`drop table if exists ${name(tx, table)}`;
        if (await exists(POSITIONS, tx)) await tx`delete from ${name(tx, POSITIONS)} where read_model = ${key}`;
      });
    },
    async persist(changes, position, previous) {
      return sql.begin(async (tx): Promise<AppliedPosition | undefined> => {
        // The position moves first, and only from where this runner saw it: a second runner
        // (one whose lease ran out unnoticed) finds it moved, and writes nothing.
        const token = previous?.token ?? randomUUID();
        const moved =
          previous === undefined
            ? await tx`
                insert into ${name(tx, POSITIONS)} (read_model, position, token) values (${key}, ${position.toString()}, ${token})
                on conflict (read_model) do nothing returning read_model`
            : await tx`
                update ${name(tx, POSITIONS)} set position = ${position.toString()}
                 where read_model = ${key} and position = ${previous.position.toString()} and token = ${previous.token}
                returning read_model`;
        if (moved.length === 0) return undefined;
        const target = name(tx, table);
        for (const change of changes) {
          switch (change.op) {
            case "insert":
              await tx`insert into ${target} ${tx(change.values)}`;
              break;
            case "update":
              await tx`update ${target} set ${tx(change.values)} where ${where(tx, change.where)}`;
              break;
            case "remove":
              await tx`delete from ${target} where ${where(tx, change.where)}`;
              break;
          }
        }
        return { position, token };
      });
    },
    async appliedPosition() {
      const [row] = await sql<{ position: string; token: string }[]>`
        select position::text, token from ${name(sql, POSITIONS)} where read_model = ${key}`;
      return row ? { position: BigInt(row.position), token: row.token } : undefined;
    },
  };
}

/** `a = $1 and b = $2 ...`; an empty condition is refused, not taken as "every row". */
function where(tx: Queryable, conditions: Row): postgres.PendingQuery<any> {
  const columns = Object.keys(conditions);
  if (columns.length === 0) throw new Error("an update or remove needs at least one column in `where`");
  return columns
    .map((c) => tx`${tx(c)} = ${conditions[c] as never}`)
    .reduce((all, next) => tx`${all} and ${next}`);
}

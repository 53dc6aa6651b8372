import { DEFAULT_LIMITS, validateAppends, validateFilter, validateStreamName, type Limits } from "../../domain";
import type { EventStore } from "../event-store";
import { append } from "./append";
import { toEventStoreError } from "./database-error";
import { migrate } from "./migrate";
import { readAll } from "./read-all";
import { readStream, type PageSettings } from "./read-stream";
import type { Sql } from "./sql";
import { deleteStream, getStream, listStreams } from "./streams";

export interface PostgresStoreOptions {
  sql: Sql;
  limits?: Limits;
  page?: Partial<PageSettings>;
  /** Called by close(), to release what the caller started with the store (an embedded database). */
  onClose?: () => Promise<void>;
}

const DEFAULT_PAGE: PageSettings = { pageBytes: 4 * 1024 * 1024, maxPageRows: 1000 };

/**
 * The PostgreSQL store: validates every input against the domain rules, runs the operation,
 * and translates every database failure into the store's errors.
 */
export function createPostgresStore(options: PostgresStoreOptions): EventStore {
  const { sql } = options;
  const limits = options.limits ?? DEFAULT_LIMITS;
  const page = { ...DEFAULT_PAGE, ...options.page };
  const guard = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (e) {
      throw toEventStoreError(e);
    }
  };
  // Validation runs inside the guard, so that bad input surfaces where the caller awaits.
  async function* guardIterable<T>(source: () => AsyncIterable<T>): AsyncGenerator<T> {
    try {
      yield* source();
    } catch (e) {
      throw toEventStoreError(e);
    }
  }
  return {
    append: (appends) =>
      guard(() => {
        validateAppends(appends, limits);
        return append(sql, appends);
      }),
    readStream: (stream, opts, signal) =>
      guardIterable(() => {
        validateStreamName(stream);
        return readStream(sql, stream, opts, page, signal);
      }),
    readAll: (opts, signal) =>
      guardIterable(() => {
        validateFilter(opts.filter, limits);
        return readAll(sql, opts, page, signal);
      }),
    listStreams: (opts) => guard(() => listStreams(sql, opts)),
    getStream: (stream) =>
      guard(() => {
        validateStreamName(stream);
        return getStream(sql, stream);
      }),
    deleteStream: (stream, expected, mode) =>
      guard(() => {
        validateStreamName(stream);
        return deleteStream(sql, stream, expected, mode);
      }),
    ping: () => guard(async () => void (await sql`select 1`)),
    close: async () => {
      // By now the server has let in-flight calls finish; a connection still open after a
      // second is one postgres.js kept from a failed connect during an outage.
      await sql.end({ timeout: 1 });
      await options.onClose?.();
    },
  };
}

/** Applies pending migrations, translating failures like every other store call. */
export async function migrateStore(sql: Sql): Promise<number[]> {
  try {
    return await migrate(sql);
  } catch (e) {
    throw toEventStoreError(e);
  }
}

import type { EventFilter, ExpectedRevision, RecordedEvent, StreamAppend } from "../domain";

export type Direction = "forwards" | "backwards";

/** The answer to one stream's append. */
export interface AppendResult {
  stream: string;
  /** The stream's revision after the append. */
  revision: bigint;
  /** The events' global positions, in order. */
  positions: bigint[];
  eventIds: string[];
  committedAt: Date;
  /** True when every event was already stored there: an idempotent retry that wrote nothing. */
  replayed: boolean;
}

export interface ReadStreamOptions {
  direction: Direction;
  /** Inclusive; unset: the start (forwards) or the end (backwards). */
  fromRevision?: bigint;
  /** The most events to return; unset or 0n: all. */
  limit?: bigint;
}

export interface ReadAllOptions {
  direction: Direction;
  /** Inclusive; unset: the start (forwards) or the end (backwards). */
  fromPosition?: bigint;
  limit?: bigint;
  filter: EventFilter;
}

export interface StreamInfo {
  name: string;
  /** The last event's revision; undefined when the stream has no events. */
  revision?: bigint;
  position?: bigint;
  firstRevision: bigint;
  createdAt: Date;
  updatedAt: Date;
  deleted: boolean;
  tombstoned: boolean;
}

export interface ListStreamsOptions {
  prefix: string;
  pageSize: number;
  /** List names after this one (the last name of the previous page). */
  after?: string;
  includeDeleted: boolean;
}

export interface StreamPage {
  streams: StreamInfo[];
  /** The last name of this page when more may follow. */
  last?: string;
}

/**
 * The store's port: everything the API needs from storage. Reads are async iterables of event
 * batches (keyset pages), so a reader holds one page in memory and no transaction between them.
 */
export interface EventStore {
  /** Appends to one or more streams atomically: all or nothing. */
  append(appends: StreamAppend[]): Promise<AppendResult[]>;
  readStream(stream: string, options: ReadStreamOptions, signal?: AbortSignal): AsyncIterable<RecordedEvent[]>;
  readAll(options: ReadAllOptions, signal?: AbortSignal): AsyncIterable<RecordedEvent[]>;
  listStreams(options: ListStreamsOptions): Promise<StreamPage>;
  getStream(stream: string): Promise<StreamInfo>;
  deleteStream(stream: string, expected: ExpectedRevision, mode: "soft" | "tombstone"): Promise<StreamInfo>;
  /** Resolves when the database answers; throws UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

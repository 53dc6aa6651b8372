import type { EventFilter, ExpectedRevision, RecordedEvent, StreamAppend } from "../domain";
import type { ConsumerLag } from "../metrics";
import type { ProjectionStore } from "./projection-store";

export type { ConsumerLag };

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
  /** Who the read is for (a principal's name): filtered scans take turns by reader (scan-slots.ts). */
  reader?: string;
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

/** What a catch-up read or a subscription selects. */
export interface Selection {
  /** One stream only. */
  stream?: string;
  /** Only revisions after this one (with `stream`). */
  afterRevision?: bigint;
  filter: EventFilter;
  /** Who the read is for (a principal's name): filtered scans take turns by reader (scan-slots.ts). */
  reader?: string;
}

/** One page of a catch-up read. */
export interface CatchUpPage {
  /** The selected events, in log order. */
  events: RecordedEvent[];
  /** The log was scanned up to this position: nothing selected at or below it is missing. */
  reached: bigint;
  /** True when the scan reached the head of the log as it was when the page was read. */
  end: boolean;
}

export interface Checkpoint {
  position: bigint;
  committedAt: Date;
}

/** Wake-ups for live delivery. */

export interface CommitWatcher {
  /** After a commit, by this process ("local") or (through NOTIFY) any server: the last position written. */
  onCommit(position: bigint, source: "local" | "notify"): void;
  /** After every (re)connection of the notification channel: notifications may have been lost. */
  onConnected(): void;
}

export interface StreamPage {
  streams: StreamInfo[];
  /** The last name of this page when more may follow. */
  last?: string;
}

/**
 * The store's port: everything the API needs from storage. Reads are async iterables of event
 * batches (keyset pages), so a reader holds one page in memory and no transaction between them.
 *
 * On PostgreSQL every statement runs under the store's statement timeout (STATEMENT_TIMEOUT
 * past it). A `signal` is the caller's: when it aborts, the work stops at once, its statement
 * in flight cancelled in the database (PGlite can stop neither: it stops after the statement).
 */
export interface EventStore {
  /**
   * Appends to one or more streams atomically: all or nothing. If `signal` aborts before the
   * append is sent to the database, it is not sent, and this rejects with the signal's reason;
   * once sent, its outcome is the database's.
   */
  append(appends: StreamAppend[], signal?: AbortSignal): Promise<AppendResult[]>;
  /** Ends, with no error, when `signal` aborts. */
  readStream(stream: string, options: ReadStreamOptions, signal?: AbortSignal): AsyncIterable<RecordedEvent[]>;
  /** Ends, with no error, when `signal` aborts. */
  readAll(options: ReadAllOptions, signal?: AbortSignal): AsyncIterable<RecordedEvent[]>;
  listStreams(options: ListStreamsOptions): Promise<StreamPage>;
  getStream(stream: string): Promise<StreamInfo>;
  deleteStream(stream: string, expected: ExpectedRevision, mode: "soft" | "tombstone"): Promise<StreamInfo>;
  /**
   * Selected events after `after`, in log order: one keyset page of at most `limit` rows scanned.
   * Rejects with the signal's reason when `signal` aborts.
   */
  readAfter(selection: Selection, after: bigint, limit: number, signal?: AbortSignal): Promise<CatchUpPage>;
  /** The last committed position (0 for an empty log). */
  head(): Promise<bigint>;
  /** The global position of a stream's event at a revision, if it exists. */
  positionOf(stream: string, revision: bigint): Promise<bigint | undefined>;
  /**
   * Each link event (type "$>") replaced by the event it points to, with the link attached;
   * a link whose event is gone, and every other event, as it is.
   */
  resolveLinks(events: RecordedEvent[]): Promise<RecordedEvent[]>;
  commitCheckpoint(name: string, position: bigint): Promise<void>;
  getCheckpoint(name: string): Promise<Checkpoint | undefined>;
  readonly projections: ProjectionStore;
  /** Starts calling `watcher` on commits; resolves with a function that stops it. */
  watch(watcher: CommitWatcher): Promise<() => Promise<void>>;
  /** Durable subscriptions' and projections' distance from the head: at most `limit` of each, by name. */
  consumerLag(limit: number): Promise<ConsumerLag[]>;
  /** Resolves when the database answers; throws UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

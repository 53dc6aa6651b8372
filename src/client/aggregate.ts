import type { JsonObject } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import type { ExpectedRevision } from "./event-store-client";

/** The shape of an aggregate's events: a union discriminated on `type`. */
export interface AggregateEvent {
  type: string;
  data: unknown;
}

/** One handler per event type, given that type's data: the type system asks for each. */
export type EventHandlers<E extends AggregateEvent> = {
  [K in E["type"]]: (data: Extract<E, { type: K }>["data"], event: { type: K; metadata: JsonObject }) => void;
};

/** A recorded event not stored yet. Its id stays with it, so that saving it again after a lost answer is recognised. */
export type PendingEvent<E extends AggregateEvent> = E & { metadata: JsonObject; id: string };

/** An event of the aggregate's history. With `revision`, the version follows the stream's revisions. */
export interface HistoricEvent {
  type: string;
  data: unknown;
  metadata?: JsonObject;
  revision?: bigint;
}

/**
 * The repository's own hooks into an aggregate. Symbols the package does not export: a user's
 * aggregate cannot mark its events stored by mistake and make its version lie.
 */
export const markStored = Symbol("markStored");
export const requeueEvents = Symbol("requeueEvents");

type AnyHandler = (data: unknown, event: { type: string; metadata: JsonObject }) => void;

/**
 * State rebuilt from its own events. Commands check their rules against the current state, then
 * `recordThat` an event; the event's handler is the only place state changes, for new events and
 * for history alike, so that a loaded aggregate is the one that was saved.
 */
export abstract class Aggregate<E extends AggregateEvent> {
  protected abstract readonly handlers: EventHandlers<E>;
  #version = 0n;
  #storedVersion = 0n;
  #pending: PendingEvent<E>[] = [];

  constructor(readonly id: string) {}

  /**
   * The revision the next event would get: the number of events applied (history and recorded)
   * unless the stream was deleted and written again, whose revisions go on where they stopped.
   */
  get version(): bigint {
    return this.#version;
  }

  /** The version of the stored part: the revision of the last stored event + 1, 0n when none is. */
  get storedVersion(): bigint {
    return this.#storedVersion;
  }

  /** What the stream must be for the recorded events to follow the stored ones. */
  get expectedRevision(): ExpectedRevision {
    return this.#storedVersion === 0n ? "no_stream" : this.#storedVersion - 1n;
  }

  /** Whether the subclass implements both toSnapshot and fromSnapshot. */
  get supportsSnapshots(): boolean {
    return this.toSnapshot !== Aggregate.prototype.toSnapshot && this.fromSnapshot !== Aggregate.prototype.fromSnapshot;
  }

  /**
   * Applies the event at once (later commands see it), then queues it for saving. A handler that
   * throws leaves nothing queued and the version as it was.
   */
  recordThat(event: E, metadata: JsonObject = {}): void {
    // A copy: the caller's object may change after this call, the event must not.
    const own = { ...metadata };
    this.#apply(event.type, event.data, own);
    this.#pending.push({ ...event, metadata: own, id: randomUUID() });
    this.#version += 1n;
  }

  /** The recorded, unsaved events, each returned once. */
  popEvents(): PendingEvent<E>[] {
    return this.#pending.splice(0);
  }

  /**
   * Applies stored history without queueing it. A type without a handler is an error, not a
   * skip: state built while ignoring part of the history would be wrong without anyone knowing.
   * A type that is truly retired keeps a handler that does nothing, or an upcaster turns it into
   * a current one (middleware afterLoad).
   */
  replay(events: Iterable<HistoricEvent>): void {
    if (this.#pending.length > 0) {
      throw new Error(`${this.#name} has ${this.#pending.length} unsaved events: history must come before new events`);
    }
    for (const event of events) {
      const version = event.revision === undefined ? this.#version + 1n : event.revision + 1n;
      if (version <= this.#version) {
        throw new Error(`${this.#name} is at version ${this.#version}: revision ${event.revision} (${event.type}) is applied already`);
      }
      this.#apply(event.type, event.data, event.metadata ?? {});
      this.#version = this.#storedVersion = version;
    }
  }

  /** Starts a new aggregate from a snapshot taken at `version` (the revision of its last event + 1). */
  restoreSnapshot(state: unknown, version: bigint): void {
    if (this.#version !== 0n || this.#pending.length > 0) throw new Error(`${this.#name} is not new: a snapshot can only start an aggregate`);
    if (version <= 0n) throw new Error(`${this.#name}: a snapshot's version must be positive (got ${version})`);
    this.fromSnapshot(state);
    this.#version = this.#storedVersion = version;
  }

  /** The state as JSON-serialisable data; override with fromSnapshot to use snapshots. */
  toSnapshot(): unknown {
    throw new Error(`${this.constructor.name} does not implement toSnapshot(): implement toSnapshot and fromSnapshot, or configure no snapshots`);
  }

  /** Sets the state from what toSnapshot returned (as JSON gave it back). */
  protected fromSnapshot(_state: unknown): void {
    throw new Error(`${this.constructor.name} does not implement fromSnapshot(): implement toSnapshot and fromSnapshot, or configure no snapshots`);
  }

  /** For the repository: the popped events are stored, the last one at `revision`. */
  [markStored](revision: bigint): void {
    this.#storedVersion = revision + 1n;
    // Revisions go on past a deleted stream's: the version follows them, as replay's does.
    this.#version = this.#storedVersion + BigInt(this.#pending.length);
  }

  /** For the repository: saving the popped events failed; they are pending again, ahead of any recorded since. */
  [requeueEvents](events: PendingEvent<E>[]): void {
    this.#pending.unshift(...events);
  }

  get #name(): string {
    return `${this.constructor.name} ${this.id}`;
  }

  #apply(type: string, data: unknown, metadata: JsonObject): void {
    // Own keys only: "constructor" or "toString" must not pass for handlers.
    const handlers: object = this.handlers;
    const handler = Object.hasOwn(handlers, type) ? (handlers as Record<string, unknown>)[type] : undefined;
    if (typeof handler !== "function") throw new Error(`${this.#name} has no handler for event type ${type}`);
    (handler as AnyHandler)(data, { type, metadata });
  }
}

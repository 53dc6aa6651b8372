import type { DomainEventData, EventTypeRegistry } from "./event-types";
import type { RecordedEvent } from "./events";
import type { Middleware } from "./middleware";

/** What a projector's handlers can do besides changing the state. */
export interface ProjectionContext {
  /** Appends an event to the projection's own stream (named after it). */
  emit(event: DomainEventData): void;
  /** Appends a link to `event` in `stream`. */
  linkTo(stream: string, event: Pick<RecordedEvent, "stream" | "revision">): void;
}

/** How a projection's state travels to its record. */
export interface StateCodec<S> {
  contentType: string;
  serialize(state: S): Uint8Array;
  deserialize(bytes: Uint8Array): S;
}

export interface ProjectorOptions<S> {
  registry?: EventTypeRegistry;
  middleware?: Middleware[];
  /** Persist after this many events (default 100)... */
  persistEveryEvents?: number;
  /** ...or this long after the last persist, whichever comes first (default 1,000 ms). */
  persistEveryMs?: number;
  /** How long the lease lasts unless renewed (default 10,000 ms; the server allows 1,000 and up). */
  leaseTtlMs?: number;
  /** How often the lease is renewed and the status checked (default 1,000 ms). */
  controlIntervalMs?: number;
  /** This runner's name in the lease (default host, process id and a random part). */
  holder?: string;
  /** The state's serialisation (default JSON). */
  stateCodec?: StateCodec<S>;
  /** Deleting (status DELETING, or delete()) also deletes the stream the projection emitted to. */
  deleteEmittedEvents?: boolean;
  /** Called while another runner holds the lease and this one waits for it. */
  onWaiting?(holder: string, expiresAt: Date): void;
}

export interface RunOptions {
  /** Keep following live events (the default), or stop once caught up. */
  keepRunning?: boolean;
}

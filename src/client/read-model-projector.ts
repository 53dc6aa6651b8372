import type { EventStoreClient } from "./event-store-client";
import { PersistentProjection } from "./persistent-projection";
import type { ProjectionContext, ProjectorOptions } from "./projector-options";
import type { ReadModel } from "./read-model";

/** What a read-model projector's handlers get: a projector's context, and `stack` for read-model changes. */
export interface ReadModelContext<Change> extends ProjectionContext {
  /** Queues a change; each persist applies the queued changes with the position they reach. */
  stack(change: Change): void;
}

/**
 * A projector that drives a read model: handlers stack changes, and each persist applies them to
 * the read model with their position (so that none is applied twice), then writes the record.
 * The read model is initialised on the first run, reset on reset and deleted on delete.
 */
export class ReadModelProjector<S = unknown, Change = unknown> extends PersistentProjection<S, ReadModelContext<Change>, Change> {
  constructor(client: EventStoreClient, name: string, readonly readModel: ReadModel<Change>, options: ProjectorOptions<S> = {}) {
    super(client, name, options, readModel);
  }

  /** The initial state; call it before `when` or `whenAny`. */
  init<T>(initial: () => T): ReadModelProjector<T, Change> {
    const self = this as unknown as ReadModelProjector<T, Change>;
    self.definition.init(initial);
    return self;
  }
}

export function createReadModelProjector<Change>(
  client: EventStoreClient,
  name: string,
  readModel: ReadModel<Change>,
  options?: ProjectorOptions<unknown>,
): ReadModelProjector<unknown, Change> {
  return new ReadModelProjector(client, name, readModel, options);
}

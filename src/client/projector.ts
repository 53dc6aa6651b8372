import type { EventStoreClient } from "./event-store-client";
import { PersistentProjection } from "./persistent-projection";
import type { ProjectionContext, ProjectorOptions } from "./projector-options";

/**
 * A persistent projection: the query's builder, run until stopped, with its state and positions
 * in the server's projection record (see ProjectionRunner for how it persists, leases and obeys).
 * Handlers may `emit` to the projection's own stream and `linkTo` other streams.
 */
export class Projector<S = unknown> extends PersistentProjection<S, ProjectionContext, never> {
  constructor(client: EventStoreClient, name: string, options: ProjectorOptions<S> = {}) {
    super(client, name, options);
  }

  /** The initial state; call it before `when` or `whenAny`. */
  init<T>(initial: () => T): Projector<T> {
    const self = this as unknown as Projector<T>;
    self.definition.init(initial);
    return self;
  }
}

export function createProjector(client: EventStoreClient, name: string, options?: ProjectorOptions<unknown>): Projector {
  return new Projector(client, name, options);
}

import type { EventStoreClient } from "./event-store-client";
import { createEventTypeRegistry, type EventTypeRegistry } from "./event-types";
import { applyAfterLoad, type Middleware } from "./middleware";
import { ProjectionBuilder } from "./projection-definition";

export interface QueryOptions {
  /** Decodes payloads; unregistered types come raw (JSON parsed, or bytes). */
  registry?: EventTypeRegistry;
  middleware?: Middleware[];
}

/**
 * A transient fold over the events as they are now: `fromStream`/`fromStreams`/`fromAll`, `init`,
 * `when` or `whenAny`, then `run()` answers the state. Nothing is stored.
 */
export class Query<S = unknown> extends ProjectionBuilder<S, void> {
  constructor(
    private readonly client: EventStoreClient,
    private readonly options: QueryOptions = {},
  ) {
    super();
  }

  /** The initial state; call it before `when` or `whenAny`. */
  init<T>(initial: () => T): Query<T> {
    const self = this as unknown as Query<T>;
    self.definition.init(initial);
    return self;
  }

  /** Folds every selected event stored when it starts, in log order, and answers the state. */
  async run(signal?: AbortSignal): Promise<S> {
    const { source, initialState, apply } = this.definition.complete();
    const registry = this.options.registry ?? createEventTypeRegistry();
    const caughtUp = new AbortController();
    let state = initialState();
    const events = this.client.subscribe({
      stream: source.stream,
      filter: source.filter,
      from: "start",
      signal: signal ? AbortSignal.any([signal, caughtUp.signal]) : caughtUp.signal,
      onCaughtUp: () => caughtUp.abort(),
    });
    for await (const recorded of events) {
      const event = await applyAfterLoad(this.options.middleware ?? [], registry.decode(recorded));
      state = apply(state, event, undefined);
    }
    signal?.throwIfAborted();
    return state;
  }
}

export function createQuery(client: EventStoreClient, options?: QueryOptions): Query {
  return new Query(client, options);
}

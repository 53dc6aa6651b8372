import { EventProperty, Operator } from "../../gen/eventstore/v1/eventstore_pb";
import type { DomainEvent } from "./event-types";
import type { EventFilter } from "./filter";
import type { SubscribeOptions } from "./subscription";

/** A handler: the state so far and an event in, the new state out (`undefined`: the same state, changed in place). */
export type ProjectionHandler<S, C> = (state: S, event: DomainEvent, context: C) => S | void;

/** Handlers by event type; `P` maps each type to its payload's type. */
export type ProjectionHandlers<S, C, P extends Record<string, unknown> = Record<string, unknown>> = {
  [K in keyof P & string]: (state: S, event: DomainEvent<P[K]>, context: C) => S | void;
};

/** A query or projection built wrongly: a second source, handlers before `init`, no handler. */
export class ProjectionDefinitionError extends Error {
  override name = "ProjectionDefinitionError";
}

/** Where a projection reads from, as a subscription; `streams` names the streams of fromStreams. */
export type ProjectionSource = Pick<SubscribeOptions, "stream" | "filter"> & { streams?: string[] };

/**
 * The definition that queries and projectors share: one source, an initial state, and either
 * handlers by type or one handler for all. Each misuse is an error at once, naming the fix.
 */
export class ProjectionDefinition<S, C> {
  private source?: ProjectionSource;
  private initial?: () => S;
  private handlers?: Record<string, ProjectionHandler<S, C>>;
  private any?: ProjectionHandler<S, C>;

  fromStream(stream: string, filter?: EventFilter): void {
    this.setSource({ stream, filter });
  }

  /** Several streams, merged in log order: a filter on the stream property (one filter term each). */
  fromStreams(streams: string[]): void {
    if (streams.length === 0) throw new ProjectionDefinitionError("fromStreams needs at least one stream");
    const matchers = [
      {
        field: { case: "property" as const, value: EventProperty.STREAM },
        operator: Operator.IN,
        values: streams.map((s) => ({ kind: { case: "stringValue" as const, value: s } })),
      },
    ];
    this.setSource({ filter: { matchers }, streams: [...streams] });
  }

  fromAll(filter?: EventFilter): void {
    this.setSource({ filter });
  }

  init(initial: () => S): void {
    if (this.initial) throw new ProjectionDefinitionError("init was already called");
    this.initial = initial;
  }

  when(handlers: Record<string, ProjectionHandler<S, C>>): void {
    this.requireInit("when");
    if (this.handlers || this.any) throw new ProjectionDefinitionError("when or whenAny was already called");
    if (Object.keys(handlers).length === 0) throw new ProjectionDefinitionError("when needs at least one handler");
    this.handlers = handlers;
  }

  whenAny(handler: ProjectionHandler<S, C>): void {
    this.requireInit("whenAny");
    if (this.handlers || this.any) throw new ProjectionDefinitionError("when or whenAny was already called");
    this.any = handler;
  }

  /** What running needs; throws if the definition is not complete. */
  complete(): { source: ProjectionSource; initialState: () => S; apply: (state: S, event: DomainEvent, context: C) => S } {
    if (!this.source) throw new ProjectionDefinitionError("no source: call fromStream, fromStreams or fromAll before running");
    if (!this.initial) throw new ProjectionDefinitionError("no state: call init before running");
    if (!this.handlers && !this.any) throw new ProjectionDefinitionError("no handler: call when or whenAny before running");
    const { handlers, any } = this;
    return {
      source: this.source,
      initialState: this.initial,
      apply: (state, event, context) => {
        // Events of types without a handler pass by: the state stays as it is.
        const handler = any ?? (Object.hasOwn(handlers!, event.type) ? handlers![event.type] : undefined);
        if (!handler) return state;
        const next = handler(state, event, context);
        return next === undefined ? state : next;
      },
    };
  }

  private setSource(source: ProjectionSource): void {
    if (this.source) throw new ProjectionDefinitionError("a source was already chosen: call one of fromStream, fromStreams and fromAll, once");
    this.source = source;
  }

  private requireInit(method: string): void {
    if (!this.initial) throw new ProjectionDefinitionError(`${method} before init: call init first, so that handlers have a state`);
  }
}

/**
 * The builder methods of queries and projectors, over a definition. `init` is each subclass's
 * own, since it gives the builder its state type.
 */
export abstract class ProjectionBuilder<S, C> {
  protected readonly definition = new ProjectionDefinition<S, C>();

  fromStream(stream: string, filter?: EventFilter): this {
    this.definition.fromStream(stream, filter);
    return this;
  }

  /** Several streams, merged in log order. */
  fromStreams(...streams: string[]): this {
    this.definition.fromStreams(streams);
    return this;
  }

  /** The whole log, or what the filter keeps of it (a category, event types, metadata matchers). */
  fromAll(filter?: EventFilter): this {
    this.definition.fromAll(filter);
    return this;
  }

  /** Handlers by event type; `P` may map each type to its payload's type. Other types pass by. */
  when<P extends Record<string, unknown> = Record<string, unknown>>(handlers: ProjectionHandlers<S, C, P>): this {
    this.definition.when(handlers as Record<string, ProjectionHandler<S, C>>);
    return this;
  }

  /** One handler for every event. */
  whenAny(handler: ProjectionHandler<S, C>): this {
    this.definition.whenAny(handler);
    return this;
  }
}

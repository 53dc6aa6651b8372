import type { EventStoreClient } from "./event-store-client";
import { ProjectionBuilder } from "./projection-definition";
import type { ProjectionStatus } from "./projection-records";
import { ProjectionRunner } from "./projection-runner";
import type { ProjectionContext, ProjectorOptions, RunOptions } from "./projector-options";
import type { ReadModel } from "./read-model";

/** What projectors share: the builder, and the running, stopping, resetting and deleting of a runner. */
export abstract class PersistentProjection<S, C extends ProjectionContext, Change> extends ProjectionBuilder<S, C> {
  private runner?: ProjectionRunner<S, Change>;

  protected constructor(
    private readonly client: EventStoreClient,
    readonly name: string,
    private readonly options: ProjectorOptions<S>,
    private readonly target?: ReadModel<Change>,
  ) {
    super();
  }

  /** Runs until stopped (from here or through the server), or until caught up with `keepRunning: false`. */
  run(options?: RunOptions): Promise<void> {
    return this.getRunner().run(options);
  }

  /** Persists and stops; waits for the run to end. */
  stop(): Promise<void> {
    return this.getRunner().stop();
  }

  /** Back to the initial state and position 0 (the read model reset too); a running projection carries on from there. */
  reset(): Promise<void> {
    return this.getRunner().reset();
  }

  /** Deletes the record (and the read model); a running projection stops. */
  delete(): Promise<void> {
    return this.getRunner().delete();
  }

  get state(): S {
    return this.getRunner().getState();
  }

  get status(): ProjectionStatus {
    return this.getRunner().getStatus();
  }

  private getRunner(): ProjectionRunner<S, Change> {
    if (!this.runner) {
      const { source, initialState, apply } = this.definition.complete();
      this.runner = new ProjectionRunner<S, Change>(this.client, this.name, source, initialState, apply as never, this.options, this.target);
    }
    return this.runner;
  }
}

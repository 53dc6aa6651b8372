import { createHash, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventStoreClient } from "./event-store-client";
import { createEventTypeRegistry, type DomainEvent, type DomainEventData, type EventTypeRegistry } from "./event-types";
import {
  DuplicateEventIdError,
  LeaseHeldError,
  ProjectionExistsError,
  ProjectionNotFoundError,
  StreamNotFoundError,
  UnavailableError,
  WrongExpectedVersionError,
} from "./errors";
import { linkTo, type EventData, type RecordedEvent } from "./events";
import { applyAfterLoad, applyBeforeAppend, type Middleware } from "./middleware";
import type { ProjectionSource } from "./projection-definition";
import type { ProjectionRecord, ProjectionStatus } from "./projection-records";
import type { ReadModel } from "./read-model";

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

/** A control request, from the record's status or from this process. */
type Control = "stopping" | "resetting" | "deleting";

const jsonCodec: StateCodec<any> = {
  contentType: "application/json",
  serialize: (state) => new TextEncoder().encode(JSON.stringify(state) ?? "null"),
  deserialize: (bytes) => JSON.parse(new TextDecoder().decode(bytes)),
};

/**
 * Runs one projection: takes its lease (waiting while another runner holds it), follows its
 * source from the position in its record, folds each event into the state, and persists state
 * and positions through the record, guarded by the record's version, every N events or T ms and
 * on stop. It renews the lease and reads the status on a timer, and obeys STOPPING, RESETTING and
 * DELETING set from anywhere.
 *
 * Exactly-once effects across crashes: read-model changes carry their position (the read model
 * skips what it already has); emitted events and links have ids derived from the projection and
 * the source event, so re-emitting after a crash is an idempotent retry the store answers
 * without writing.
 */
export class ProjectionRunner<S, Change = never> {
  readonly holder: string;
  private readonly codec: StateCodec<S>;
  private readonly registry: EventTypeRegistry;
  private state!: S;
  private status: ProjectionStatus = "idle";
  private version = 0n;
  private position = 0n;
  private readonly revisions = new Map<string, bigint>();
  private createdAt = new Date(0);
  /** The read model's applied position: changes of events at or below it are already in. */
  private applied?: bigint;
  private changes: Change[] = [];
  private emits: { stream: string; event: EventData }[] = [];
  private unpersisted = 0;
  private lastPersistAt = 0;
  private persisting: Promise<void> = Promise.resolve();
  private control?: Control;
  /** Why following stopped other than a control: the lease or the record is gone, or a reload. */
  private interruption?: "lost" | "deleted" | "reload";
  private following?: AbortController;
  /** Bumped by each status write of this runner: answers to calls started before it are stale. */
  private statusEpoch = 0;
  private runningNow?: Promise<void>;
  /** True while this runner holds the lease. */
  private holding = false;
  /** Ends a wait for the lease early (stop). */
  private wake = new AbortController();
  /** A failure of work done off the event loop (a timed persist): run() rejects with it. */
  private failure?: unknown;

  constructor(
    private readonly client: EventStoreClient,
    readonly name: string,
    private readonly source: ProjectionSource,
    private readonly initialState: () => S,
    private readonly apply: (state: S, event: DomainEvent, context: ProjectionContext & { stack(change: Change): void }) => S,
    private readonly options: ProjectorOptions<S> = {},
    private readonly readModel?: ReadModel<Change>,
  ) {
    this.holder = options.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.codec = options.stateCodec ?? jsonCodec;
    this.registry = options.registry ?? createEventTypeRegistry();
    this.state = initialState();
  }

  getState(): S {
    return this.state;
  }

  getStatus(): ProjectionStatus {
    return this.status;
  }

  /** Runs until stopped (or caught up, with keepRunning false). */
  run(options: RunOptions = {}): Promise<void> {
    if (this.runningNow) throw new Error(`projection ${this.name} is already running in this process`);
    this.control = undefined;
    this.interruption = undefined;
    this.failure = undefined;
    this.wake = new AbortController();
    this.runningNow = this.runOnce(options.keepRunning ?? true).finally(() => (this.runningNow = undefined));
    return this.runningNow;
  }

  /** Asks the running projection to persist and stop, and waits for it; ends a wait for the lease too. */
  async stop(): Promise<void> {
    const running = this.runningNow;
    if (!running) return;
    this.request("stopping");
    this.wake.abort();
    await running;
  }

  /**
   * Starts again from the initial state, with the read model reset. Running, it carries on from
   * there; not running (or waiting for the lease), it resets the record and the read model.
   */
  async reset(): Promise<void> {
    if (this.holding) return this.request("resetting");
    await this.client.projections.reset(this.name);
    await this.readModel?.reset();
  }

  /** Deletes the record and the read model (and the emitted stream, if so configured); running, it stops. */
  async delete(): Promise<void> {
    const running = this.runningNow;
    if (!this.holding || !running) return this.deleteEverything();
    this.request("deleting");
    await running;
  }

  private request(control: Control): void {
    this.control ??= control;
    this.following?.abort();
  }

  private async runOnce(keepRunning: boolean): Promise<void> {
    const record = await this.acquire();
    if (!record) return; // stopped while waiting for the lease
    this.holding = true;
    const renewal = setInterval(() => void this.renew(), this.options.controlIntervalMs ?? 1000);
    try {
      this.load(record);
      if (record.status === "deleting") return await this.deleteEverything();
      if (record.status === "resetting") await this.resetEverything();
      if (this.readModel && !(await this.readModel.isInitialized())) await this.readModel.init();
      this.applied = await this.readModel?.appliedPosition();
      await this.setStatus("running");
      for (;;) {
        const caughtUp = await this.follow(keepRunning);
        if (this.failure) throw this.failure;
        if (this.interruption === "lost" || this.interruption === "deleted") return;
        if (this.interruption === "reload") {
          this.interruption = undefined;
          this.load(await this.client.projections.get(this.name));
          continue;
        }
        const control = this.control;
        if (control === "deleting") return await this.deleteEverything();
        if (control === "resetting") {
          this.control = undefined;
          await this.resetEverything();
          await this.setStatus("running");
          continue;
        }
        if (control === "stopping" || caughtUp) {
          await this.persist();
          if (this.interruption) continue; // the persist found the record changed: act on that first
          await this.setStatus("idle");
          await this.client.projections.releaseLease(this.name, this.holder);
          return;
        }
      }
    } catch (e) {
      if (e instanceof ProjectionNotFoundError) return; // deleted from elsewhere: nothing left to run
      throw e;
    } finally {
      clearInterval(renewal);
      this.following = undefined;
      this.holding = false;
    }
  }

  /** Follows the source until a control, an interruption, or (keepRunning false) caught up; true if caught up. */
  private async follow(keepRunning: boolean): Promise<boolean> {
    if (this.control || this.interruption) return false;
    const following = (this.following = new AbortController());
    let caughtUp = false;
    const events = this.client.subscribe({
      stream: this.source.stream,
      filter: this.source.filter,
      from: { afterPosition: this.position },
      signal: following.signal,
      onCaughtUp: (position) => {
        // Everything up to `position` is handled (the events before it were yielded first).
        if (position > this.position) this.position = position;
        if (!keepRunning) {
          caughtUp = true;
          following.abort();
        }
      },
    });
    for await (const recorded of events) {
      const event = await applyAfterLoad(this.options.middleware ?? [], this.registry.decode(recorded));
      if (following.signal.aborted) break; // a reset or reload while decoding: this event belongs to the old run
      this.handle(event);
      if (this.unpersisted >= (this.options.persistEveryEvents ?? 100) || Date.now() - this.lastPersistAt >= (this.options.persistEveryMs ?? 1000)) {
        await this.persist();
      }
    }
    return caughtUp;
  }

  /** Folds one event in; everything it changes changes together, with no await in between. */
  private handle(event: DomainEvent): void {
    const alreadyApplied = this.applied !== undefined && event.position <= this.applied;
    let emitted = 0;
    const idFor = (what: string) => emittedEventId(this.name, this.createdAt, event.id, what, emitted++);
    const context = {
      emit: (e: DomainEventData) =>
        this.emits.push({ stream: this.name, event: { ...this.registry.toEventData(e), id: idFor("emit") } }),
      linkTo: (stream: string, target: Pick<RecordedEvent, "stream" | "revision">) =>
        this.emits.push({ stream, event: { ...linkTo(target), id: idFor(`link:${stream}`) } }),
      stack: (change: Change) => {
        if (!alreadyApplied) this.changes.push(change);
      },
    };
    this.state = this.apply(this.state, event, context);
    this.position = event.position;
    // Per-stream revisions for named sources only: the whole log or a category has no bound on its streams.
    if (this.source.stream !== undefined || this.source.streams !== undefined) this.revisions.set(event.stream, event.revision);
    this.unpersisted++;
  }

  /** Persists one at a time; each takes its snapshot of state and positions when it starts. */
  private persist(): Promise<void> {
    const next = this.persisting.then(() => this.persistNow());
    this.persisting = next.catch(() => {});
    return next;
  }

  private async persistNow(): Promise<void> {
    if (this.interruption) return;
    const snapshot = {
      state: this.codec.serialize(this.state),
      position: this.position,
      streamRevisions: new Map(this.revisions),
    };
    const changes = this.changes;
    const emits = this.emits;
    this.changes = [];
    this.emits = [];
    const unpersisted = this.unpersisted;
    this.unpersisted = 0;
    this.lastPersistAt = Date.now();
    let stage: "read model" | "emits" | "record" = "read model";
    try {
      // Read model and emitted events first: if this process dies before the record is written,
      // the events are handled again, and both recognise what they already have.
      if (this.readModel && (this.applied === undefined || snapshot.position > this.applied)) {
        await this.readModel.persist(changes, snapshot.position);
        this.applied = snapshot.position;
      }
      stage = "emits";
      await this.flush(emits);
      stage = "record";
      const epoch = this.statusEpoch;
      const record = await this.client.projections.persist(this.name, snapshot, this.version, this.holder);
      this.version = record.version;
      if (epoch === this.statusEpoch) this.observe(record.status);
    } catch (e) {
      if (e instanceof UnavailableError) {
        // The server is away for a moment: keep what is not written yet for the next persist.
        if (stage === "read model") this.changes = changes.concat(this.changes);
        if (stage !== "record") this.emits = emits.concat(this.emits);
        this.unpersisted += unpersisted;
        return;
      }
      this.interrupt(e);
    }
  }

  /** Appends emitted events and links in order, one append per run of the same stream. */
  private async flush(emits: { stream: string; event: EventData }[]): Promise<void> {
    for (let i = 0; i < emits.length; ) {
      let j = i + 1;
      while (j < emits.length && emits[j].stream === emits[i].stream) j++;
      const stream = emits[i].stream;
      const events = await Promise.all(emits.slice(i, j).map((e) => applyBeforeAppend(this.options.middleware ?? [], e.event, { stream })));
      try {
        await this.client.append(stream, events);
      } catch (e) {
        // Some of them are stored already (a crash after an earlier flush): one by one, the stored
        // ones are idempotent retries and the rest are appended.
        if (!(e instanceof DuplicateEventIdError)) throw e;
        for (const event of events) await this.client.append(stream, [event]);
      }
      i = j;
    }
  }

  /** Takes the lease, creating the record if there is none, and waits while another runner holds it. */
  private async acquire(): Promise<ProjectionRecord | undefined> {
    const ttl = this.options.leaseTtlMs ?? 10_000;
    for (;;) {
      if (this.control) return undefined;
      try {
        return await this.client.projections.acquireLease(this.name, this.holder, ttl);
      } catch (e) {
        if (e instanceof ProjectionNotFoundError) {
          await this.client.projections
            .create(this.name, this.codec.serialize(this.initialState()), { stateContentType: this.codec.contentType })
            .catch((c) => {
              if (!(c instanceof ProjectionExistsError)) throw c;
            });
          continue;
        }
        if (!(e instanceof LeaseHeldError)) throw e;
        this.options.onWaiting?.(e.holder, e.expiresAt);
        const wait = Math.max(50, Math.min(e.expiresAt.getTime() - Date.now() + 50, this.options.controlIntervalMs ?? 1000));
        await sleep(wait, undefined, { signal: this.wake.signal }).catch(() => {});
      }
    }
  }

  /** Renews the lease (the answer carries the status to obey), and persists if events wait too long. */
  private async renew(): Promise<void> {
    if (this.unpersisted > 0 && Date.now() - this.lastPersistAt >= (this.options.persistEveryMs ?? 1000)) {
      this.persist().catch((e) => {
        this.failure ??= e;
        this.following?.abort();
      });
    }
    const epoch = this.statusEpoch;
    try {
      const record = await this.client.projections.acquireLease(this.name, this.holder, this.options.leaseTtlMs ?? 10_000);
      if (epoch === this.statusEpoch) this.observe(record.status);
    } catch (e) {
      if (e instanceof LeaseHeldError || e instanceof ProjectionNotFoundError) this.interrupt(e);
      // Anything else (the server restarting) may pass: the next renewal tries again.
    }
  }

  private observe(status: ProjectionStatus): void {
    if (status === "stopping" || status === "resetting" || status === "deleting") {
      if (!this.control) {
        this.control = status;
        this.following?.abort();
      }
    }
  }

  /** A failed write or renewal: the lease is lost, the record deleted, or changed by someone else. */
  private interrupt(e: unknown): void {
    if (e instanceof LeaseHeldError) this.interruption = "lost";
    else if (e instanceof ProjectionNotFoundError) this.interruption = "deleted";
    else if (e instanceof WrongExpectedVersionError) this.interruption ??= "reload";
    else throw e;
    this.following?.abort();
  }

  private async setStatus(status: ProjectionStatus): Promise<void> {
    this.statusEpoch++;
    const record = await this.client.projections.updateStatus(this.name, status);
    this.status = record.status;
  }

  private load(record: ProjectionRecord): void {
    this.state = this.codec.deserialize(record.state);
    this.position = record.position;
    this.revisions.clear();
    for (const [stream, revision] of record.streamRevisions) this.revisions.set(stream, revision);
    this.version = record.version;
    this.createdAt = record.createdAt;
    this.status = record.status;
    this.changes = [];
    this.emits = [];
    this.unpersisted = 0;
  }

  private async resetEverything(): Promise<void> {
    this.statusEpoch++;
    this.load(await this.client.projections.reset(this.name));
    await this.readModel?.reset();
    this.applied = undefined;
  }

  private async deleteEverything(): Promise<void> {
    this.statusEpoch++;
    await this.client.projections.delete(this.name).catch((e) => {
      if (!(e instanceof ProjectionNotFoundError)) throw e;
    });
    await this.readModel?.delete();
    if (this.options.deleteEmittedEvents) {
      await this.client.deleteStream(this.name).catch((e) => {
        if (!(e instanceof StreamNotFoundError)) throw e;
      });
    }
    this.status = "idle";
  }
}

/**
 * The id of the n-th event a handler emits or links for a source event: a name-based (v5-style)
 * UUID of the projection, its record's creation time (a projection deleted and created again
 * emits anew), the source event and what is written, so handling the event again after a crash
 * writes the same ids.
 */
function emittedEventId(projection: string, createdAt: Date, sourceId: string, what: string, n: number): string {
  const hash = createHash("sha1").update(`${projection}\n${createdAt.toISOString()}\n${sourceId}\n${what}\n${n}`).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { EventStoreClient } from "./event-store-client";
import { createEventTypeRegistry, type DomainEvent, type DomainEventData, type EventTypeRegistry } from "./event-types";
import {
  LeaseHeldError,
  ProjectionExistsError,
  ProjectionNotFoundError,
  StreamNotFoundError,
  WrongExpectedStatusError,
  WrongExpectedVersionError,
} from "./errors";
import { appendEmitted, emittedEventId, type EmittedEvent } from "./emitted-events";
import { linkTo, type RecordedEvent } from "./events";
import { applyAfterLoad, type Middleware } from "./middleware";
import type { ProjectionSource } from "./projection-definition";
import type { ProjectionRecord, ProjectionStatus } from "./projection-records";
import type { ProjectionContext, ProjectorOptions, RunOptions, StateCodec } from "./projector-options";
import type { AppliedPosition, ReadModel } from "./read-model";
import { isTransient, retryWhileAway } from "./transient";

/** A request to the runner, from the record's status or from this process; later ones outrank earlier. */
type Control = "stopping" | "resetting" | "deleting";
const RANK: Record<Control, number> = { stopping: 1, resetting: 2, deleting: 3 };

/** What a step of the run's loop says: the run is over, or goes round again. */
type Step = "done" | "again";

/** One run's own flags, so that answers arriving after it ended cannot touch the next one. */
interface Run {
  done?: Promise<void>;
  control?: Control;
  /** stop() was called here: a reset that outranked it is followed by the stop. */
  stopAfter?: boolean;
  /** reset() and delete() called here, waiting to hear that the run carried them out. */
  waiters: { control: Control; resolve: (obeyed: boolean) => void }[];
  /** A persist started from the event loop or the timer is under way: the next waits its turn. */
  persistQueued: boolean;
  /** Why following stopped other than a control: the lease lost, the record deleted or changed elsewhere. */
  interruption?: { kind: "lost" | "deleted" | "reload"; error: unknown };
  /** A failure of work done beside the event loop (a timed persist): run() rejects with it. */
  failure?: unknown;
  following?: AbortController;
  holding: boolean;
  /** Ends a wait for the lease early. */
  wake: AbortController;
  /** Bumped around each status write and reset: answers to calls that overlapped one are stale. */
  epoch: number;
  renewal?: NodeJS.Timeout;
  renewing?: Promise<void>;
  persisting: Promise<void>;
}

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
 * DELETING set from anywhere. A new run is a request to run: a STOPPING left in the record (say,
 * by a runner that died before it obeyed) gives way to RUNNING; RESETTING and DELETING are obeyed.
 *
 * Exactly-once effects across crashes: the read model moves to a position only from the one this
 * runner saw (a second runner finds it moved), and skips what it already has; emitted events and
 * links have ids derived from the projection and the source event, so re-emitting after a crash
 * is an idempotent retry the store answers without writing.
 */
export class ProjectionRunner<S, Change = never> {
  readonly holder: string;
  private readonly settings: { leaseTtlMs: number; controlIntervalMs: number; persistEveryEvents: number; persistEveryMs: number };
  private readonly codec: StateCodec<S>;
  private readonly registry: EventTypeRegistry;
  private readonly middleware: Middleware[];
  private state!: S;
  private status: ProjectionStatus = "idle";
  private version = 0n;
  private position = 0n;
  private readonly revisions = new Map<string, bigint>();
  private createdAt = new Date(0);
  /** Where the read model stands: changes of events at or below its position are already in. */
  private applied?: AppliedPosition;
  private changes: Change[] = [];
  private emits: EmittedEvent[] = [];
  private unpersisted = 0;
  private lastPersistAt = 0;
  private current?: Run;

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
    this.middleware = options.middleware ?? [];
    this.state = initialState();
    this.settings = {
      leaseTtlMs: options.leaseTtlMs ?? 10_000,
      controlIntervalMs: options.controlIntervalMs ?? 1000,
      persistEveryEvents: options.persistEveryEvents ?? 100,
      persistEveryMs: options.persistEveryMs ?? 1000,
    };
    // A lease must be renewed well before it runs out, or a slow answer loses it.
    if (this.settings.controlIntervalMs * 2 > this.settings.leaseTtlMs) {
      throw new RangeError("controlIntervalMs must be at most half of leaseTtlMs: the lease is renewed at that interval");
    }
  }

  getState(): S {
    return this.state;
  }

  getStatus(): ProjectionStatus {
    return this.status;
  }

  /**
   * Runs until stopped or deleted (from here or through the server), or until caught up with
   * `keepRunning: false`. Rejects with LeaseHeldError if another runner took the lease over
   * (this one stalled past its expiry), and with whatever a handler or a store call threw.
   */
  run(options: RunOptions = {}): Promise<void> {
    if (this.current) throw new Error(`projection ${this.name} is already running in this process`);
    const run: Run = { holding: false, wake: new AbortController(), epoch: 0, persisting: Promise.resolve(), waiters: [], persistQueued: false };
    this.current = run;
    run.done = this.runOnce(run, options.keepRunning ?? true).finally(() => {
      if (this.current === run) this.current = undefined;
    });
    return run.done;
  }

  /**
   * Asks the running projection to persist and stop, and waits until it has; ends a wait for the
   * lease too. Where it does not run here, asks the runner that holds its lease (STOPPING).
   */
  async stop(): Promise<void> {
    const run = this.current;
    if (!run) {
      const record = await this.client.projections.get(this.name);
      if (record.lease && record.status === "running") {
        await this.client.projections.updateStatus(this.name, "stopping", { expectedStatus: "running" });
      }
      return;
    }
    run.stopAfter = true;
    this.request(run, "stopping");
    await run.done?.catch(() => {});
  }

  /**
   * Back to the initial state and position 0, with the read model reset. A running projection
   * carries on from there; while another runner holds the lease, that one is asked to (RESETTING).
   */
  async reset(): Promise<void> {
    const run = this.current;
    if (run?.holding && (await this.ask(run, "resetting"))) return;
    await this.whileHolding("resetting", async () => {
      await retryWhileAway(() => this.client.projections.updateStatus(this.name, "resetting"));
      await retryWhileAway(() => this.client.projections.reset(this.name));
      await this.readModel?.reset();
      await retryWhileAway(() => this.client.projections.updateStatus(this.name, "idle", { expectedStatus: "resetting" }));
    });
  }

  /**
   * Deletes the record and the read model (and the emitted stream, if so configured). A running
   * projection stops; while another runner holds the lease, that one is asked to (DELETING).
   */
  async delete(): Promise<void> {
    const run = this.current;
    if (run?.holding && (await this.ask(run, "deleting"))) return;
    if (this.current) await this.stop(); // it was waiting for the lease, or ended without deleting
    await this.whileHolding("deleting", () => this.deleteEverything());
  }

  /** Asks this process's run for a control; true once it has carried it out, false if the run ended first. */
  private ask(run: Run, control: Control): Promise<boolean> {
    const obeyed = new Promise<boolean>((resolve) => run.waiters.push({ control, resolve }));
    this.request(run, control);
    return Promise.race([obeyed, run.done!.then(() => false, () => false)]);
  }

  private obeyed(run: Run, control: Control): void {
    for (const w of run.waiters.filter((w) => w.control === control)) w.resolve(true);
    run.waiters = run.waiters.filter((w) => w.control !== control);
  }

  /**
   * Does `work` holding the lease, so that no runner starts in the middle of it; if another runner
   * holds it, asks that one instead (the status), over whatever status it has unless it is DELETING.
   */
  private async whileHolding(control: "resetting" | "deleting", work: () => Promise<void>): Promise<void> {
    try {
      await retryWhileAway(() => this.client.projections.acquireLease(this.name, this.holder, this.settings.leaseTtlMs));
    } catch (e) {
      if (e instanceof ProjectionNotFoundError) return control === "deleting" ? this.deleteEverything() : undefined;
      if (!(e instanceof LeaseHeldError)) throw e;
      const { status } = await this.client.projections.get(this.name);
      if (status !== "deleting") await this.client.projections.updateStatus(this.name, control, { expectedStatus: status });
      return;
    }
    try {
      await work();
    } finally {
      await this.client.projections.releaseLease(this.name, this.holder).catch(() => {});
    }
  }

  private request(run: Run, control: Control): void {
    if (!run.control || RANK[control] > RANK[run.control]) run.control = control;
    run.following?.abort();
    run.wake.abort();
  }

  /** A status seen in an answer: obeyed while following (a control being handled already looked). */
  private observe(run: Run, status: ProjectionStatus): void {
    if (status !== "stopping" && status !== "resetting" && status !== "deleting") return;
    if (run.following && !run.following.signal.aborted) this.request(run, status);
  }

  private async runOnce(run: Run, keepRunning: boolean): Promise<void> {
    const record = await this.acquire(run);
    if (!record) return; // asked to stop while waiting for the lease
    run.holding = true;
    run.renewal = setInterval(() => this.tick(run), this.settings.controlIntervalMs);
    try {
      this.load(record);
      if (record.status === "deleting" || record.status === "resetting") run.control = record.status;
      else if (!(await this.writeStatus(run, "running", record.status))) await this.lookAgain(run);
      if (this.readModel && !(await this.readModel.isInitialized())) await this.readModel.init();
      this.applied = await this.readModel?.appliedPosition();
      for (;;) {
        const caughtUp = run.control || run.interruption || run.failure ? false : await this.follow(run, keepRunning);
        await run.persisting;
        if (run.failure) throw run.failure;
        const next = run.interruption
          ? await this.afterInterruption(run)
          : run.control === "deleting"
            ? await this.obeyDelete(run)
            : run.control === "resetting"
              ? await this.obeyReset(run)
              : run.control === "stopping" || caughtUp
                ? await this.finishStop(run)
                : "again";
        if (next === "done") return;
      }
    } catch (e) {
      if (e instanceof ProjectionNotFoundError) return; // deleted from elsewhere: nothing left to run
      throw e;
    } finally {
      await this.stopRenewing(run);
      await run.persisting; // nothing of this run may land in the next
      run.holding = false;
      for (const w of run.waiters) w.resolve(false);
    }
  }

  /** The lease lost (this run ends with the error), the record deleted elsewhere, or changed: reload. */
  private async afterInterruption(run: Run): Promise<Step> {
    const { kind, error } = run.interruption!;
    if (kind === "lost") throw error;
    if (kind === "deleted") return "done";
    await this.reload(run);
    return "again";
  }

  private async obeyDelete(run: Run): Promise<Step> {
    await this.stopRenewing(run); // a renewal must not outlive the record
    await retryWhileAway(() => this.client.projections.updateStatus(this.name, "deleting", { leaseHolder: this.holder }));
    await this.deleteEverything();
    this.obeyed(run, "deleting");
    return "done";
  }

  private async obeyReset(run: Run): Promise<Step> {
    // Said in the record first: a crash in the middle leaves RESETTING, which the next run obeys.
    // Only over the status seen: a DELETING set meanwhile wins.
    const seen = (await retryWhileAway(() => this.client.projections.get(this.name))).status;
    if (seen === "deleting") this.request(run, seen);
    if (seen === "deleting" || (seen !== "resetting" && !(await this.writeStatus(run, "resetting", seen)))) return "again";
    await this.resetEverything(run);
    if (run.control === "resetting") run.control = run.stopAfter ? "stopping" : undefined;
    if (!(await this.writeStatus(run, "running", "resetting"))) await this.lookAgain(run);
    this.obeyed(run, "resetting");
    return "again";
  }

  /** Persists, says IDLE and gives the lease up, unless a reset or delete came meanwhile. */
  private async finishStop(run: Run): Promise<Step> {
    await this.persist(run);
    if (run.failure || run.interruption) return "again";
    if (this.unpersisted > 0) {
      await sleep(200); // the server was away: persist again before stopping
      return "again";
    }
    const now = (await retryWhileAway(() => this.client.projections.get(this.name))).status;
    if (now === "resetting" || now === "deleting") this.request(run, now);
    if (outranksStop(run)) return "again"; // a reset or delete, asked here or there, comes first
    if (!(await this.writeStatus(run, "idle", now))) return "again";
    await this.stopRenewing(run);
    await this.client.projections.releaseLease(this.name, this.holder).catch(() => {}); // it expires anyway
    return "done";
  }

  private async stopRenewing(run: Run): Promise<void> {
    clearInterval(run.renewal);
    run.renewal = undefined;
    await run.renewing;
  }

  /** Follows the source until a control, an interruption, a failure or (keepRunning false) caught up; true if caught up. */
  private async follow(run: Run, keepRunning: boolean): Promise<boolean> {
    const following = (run.following = new AbortController());
    let caughtUp = false;
    const events = this.client.subscribe({
      stream: this.source.stream,
      filter: this.source.filter,
      from: { afterPosition: this.position },
      signal: following.signal,
      onCaughtUp: (position) => {
        // Everything up to `position` is handled: the events before it were yielded first.
        if (position > this.position) this.position = position;
        if (!keepRunning) {
          caughtUp = true;
          following.abort();
        }
      },
    });
    for await (const recorded of events) {
      const event = await applyAfterLoad(this.middleware, this.registry.decode(recorded));
      if (following.signal.aborted) break; // a control or reload while decoding: this event is the next run's
      this.handle(event);
      // In the background, one at a time: handling goes on while the record is written.
      if (!run.persistQueued && (this.unpersisted >= this.settings.persistEveryEvents || Date.now() - this.lastPersistAt >= this.settings.persistEveryMs)) {
        void this.persist(run);
      }
      if (run.failure || run.interruption) break;
    }
    if (!following.signal.aborted) throw new Error(`the subscription of projection ${this.name} ended: was the client closed?`);
    return caughtUp;
  }

  /** Folds one event in; everything it changes changes together, with no await in between. */
  private handle(event: DomainEvent): void {
    const alreadyApplied = this.applied !== undefined && event.position <= this.applied.position;
    let emitted = 0;
    const idFor = (what: string) => emittedEventId(this.name, this.createdAt, event.id, what, emitted++);
    const context = {
      emit: (e: DomainEventData) => this.emits.push({ stream: this.name, event: { ...this.registry.toEventData(e), id: idFor("emit") } }),
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

  /** Persists one at a time, each from its own snapshot; failures go to the run, never to the caller. */
  private persist(run: Run): Promise<void> {
    run.persistQueued = true;
    run.persisting = run.persisting
      .then(() => {
        run.persistQueued = false;
        return this.persistNow(run);
      })
      .catch((e) => {
        run.failure ??= e;
        run.following?.abort();
      });
    return run.persisting;
  }

  private async persistNow(run: Run): Promise<void> {
    if (run.failure || run.interruption || this.current !== run) return;
    const snapshot = { state: this.codec.serialize(this.state), position: this.position, streamRevisions: new Map(this.revisions) };
    const version = this.version;
    const [changes, emits, unpersisted] = [this.changes, this.emits, this.unpersisted];
    this.changes = [];
    this.emits = [];
    this.unpersisted = 0;
    this.lastPersistAt = Date.now();
    let stage: "read model" | "emits" | "record" = "read model";
    try {
      // Read model and emitted events first: if this process dies before the record is written,
      // the events are handled again, and both recognise what they already have.
      if (this.readModel && (this.applied === undefined || snapshot.position > this.applied.position)) {
        const applied = await this.readModel.persist(changes, snapshot.position, this.applied);
        if (!applied) {
          return this.interrupt(run, "reload", new Error("the read model moved: another runner wrote to it"));
        }
        this.applied = applied;
      }
      stage = "emits";
      await appendEmitted(this.client, this.middleware, emits);
      stage = "record";
      const epoch = run.epoch;
      const record = await this.client.projections.persist(this.name, snapshot, version, this.holder);
      this.version = record.version;
      if (epoch === run.epoch) this.observe(run, record.status);
    } catch (e) {
      if (isTransient(e)) {
        // The server is away for a moment: keep what is not written yet for the next persist.
        if (stage === "read model") this.changes = changes.concat(this.changes);
        if (stage !== "record") this.emits = emits.concat(this.emits);
        this.unpersisted += unpersisted;
        return;
      }
      if (e instanceof LeaseHeldError) return this.interrupt(run, "lost", e);
      if (e instanceof ProjectionNotFoundError) return this.interrupt(run, "deleted", e);
      if (e instanceof WrongExpectedVersionError) return this.interrupt(run, "reload", e);
      throw e;
    }
  }

  /** Takes the lease, creating the record if there is none, and waits while another runner holds it. */
  private async acquire(run: Run): Promise<ProjectionRecord | undefined> {
    for (;;) {
      if (run.control) return undefined;
      try {
        return await this.client.projections.acquireLease(this.name, this.holder, this.settings.leaseTtlMs);
      } catch (e) {
        if (e instanceof ProjectionNotFoundError) {
          await this.client.projections
            .create(this.name, this.codec.serialize(this.initialState()), { stateContentType: this.codec.contentType })
            .catch((c) => {
              if (!(c instanceof ProjectionExistsError)) throw c;
            });
          continue;
        }
        if (e instanceof WrongExpectedVersionError) continue; // the lease changed hands meanwhile: ask again
        const interval = this.settings.controlIntervalMs;
        if (isTransient(e)) {
          await sleep(interval, undefined, { signal: run.wake.signal }).catch(() => {});
          continue;
        }
        if (!(e instanceof LeaseHeldError)) throw e;
        this.options.onWaiting?.(e.holder, e.expiresAt);
        const wait = Math.max(50, Math.min(e.expiresAt.getTime() - Date.now() + 50, interval));
        await sleep(wait, undefined, { signal: run.wake.signal }).catch(() => {});
      }
    }
  }

  /** On the timer: persists if events wait too long, and renews the lease (its answer carries the status). */
  private tick(run: Run): void {
    if (this.current !== run || run.renewing) return;
    if (run.following && !run.following.signal.aborted && !run.persistQueued && this.unpersisted > 0 && Date.now() - this.lastPersistAt >= this.settings.persistEveryMs) {
      void this.persist(run);
    }
    const epoch = run.epoch;
    run.renewing = this.client.projections
      .acquireLease(this.name, this.holder, this.settings.leaseTtlMs)
      .then(
        (record) => {
          if (epoch === run.epoch) this.observe(run, record.status);
        },
        (e) => {
          if (e instanceof LeaseHeldError) this.interrupt(run, "lost", e);
          else if (e instanceof ProjectionNotFoundError) this.interrupt(run, "deleted", e);
          // Anything else (the server restarting) may pass: the next renewal tries again.
        },
      )
      .finally(() => (run.renewing = undefined));
  }

  private interrupt(run: Run, kind: "lost" | "deleted" | "reload", error: unknown): void {
    if (!run.interruption || kind !== "reload") run.interruption = { kind, error };
    run.following?.abort();
  }

  /** Writes a status only over the one expected; false (after looking again) if another was set meanwhile. */
  private async writeStatus(run: Run, status: ProjectionStatus, expectedStatus: ProjectionStatus): Promise<boolean> {
    run.epoch++;
    try {
      const record = await retryWhileAway(() =>
        this.client.projections.updateStatus(this.name, status, { expectedStatus, leaseHolder: this.holder }),
      );
      this.status = record.status;
      return true;
    } catch (e) {
      if (!(e instanceof WrongExpectedStatusError)) throw e;
      return false;
    } finally {
      run.epoch++;
    }
  }

  /** After a refused status write: whatever was asked meanwhile becomes this run's request. */
  private async lookAgain(run: Run): Promise<void> {
    const status = (await retryWhileAway(() => this.client.projections.get(this.name))).status;
    if (status === "stopping" || status === "resetting" || status === "deleting") this.request(run, status);
  }

  /** The record changed elsewhere (a reset, another writer): start again from what it holds. */
  private async reload(run: Run): Promise<void> {
    run.interruption = undefined;
    this.load(await retryWhileAway(() => this.client.projections.get(this.name)));
    this.applied = await this.readModel?.appliedPosition();
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
    this.lastPersistAt = Date.now();
  }

  private async resetEverything(run: Run): Promise<void> {
    run.epoch++;
    this.load(await retryWhileAway(() => this.client.projections.reset(this.name)));
    await this.readModel?.reset();
    this.applied = undefined;
    run.epoch++;
  }

  /** The record goes last: a crash in the middle leaves it, still DELETING, for the next run to finish. */
  private async deleteEverything(): Promise<void> {
    if (this.options.deleteEmittedEvents) {
      await retryWhileAway(() => this.client.deleteStream(this.name)).catch((e) => {
        if (!(e instanceof StreamNotFoundError)) throw e;
      });
    }
    await this.readModel?.delete();
    await retryWhileAway(() => this.client.projections.delete(this.name)).catch((e) => {
      if (!(e instanceof ProjectionNotFoundError)) throw e;
    });
    this.status = "idle";
  }



}

/** A reset or delete is asked for (a stop gives way to either). */
function outranksStop(run: Run): boolean {
  return run.control === "resetting" || run.control === "deleting";
}

import { markStored, requeueEvents, type Aggregate } from "./aggregate";
import { StreamNotFoundError } from "./errors";
import type { AppendResult, EventStoreClient } from "./event-store-client";
import { createEventTypeRegistry, type EventTypeRegistry } from "./event-types";
import { toProposedEvent, type EventData, type RecordedEvent } from "./events";
import { applyAfterAppend, applyAfterLoad, applyBeforeAppend, type Middleware } from "./middleware";

const SNAPSHOT_TYPE = "$snapshot";

export interface SnapshotOptions {
  /** A snapshot is written when a save passes a multiple of `every` events. */
  every: number;
  /** Snapshots written under another schema version are ignored: bump it when toSnapshot's shape changes. Default 1. */
  schemaVersion?: number;
}

export interface RepositoryOptions<A extends Aggregate<any>> {
  client: Pick<EventStoreClient, "append" | "readStream">;
  /** How payloads are (de)serialised; unregistered types are JSON. */
  registry?: EventTypeRegistry;
  stream: (id: string) => string;
  create: (id: string) => A;
  snapshots?: SnapshotOptions;
  middleware?: Middleware[];
  /**
   * A snapshot could not be written or used. Loads and saves go on without it (the events are
   * the truth); the default reports it as a process warning.
   */
  onSnapshotError?: (error: unknown, context: { stream: string }) => void;
}

export interface Repository<A extends Aggregate<any>> {
  /** The aggregate from its stream's events (after its snapshot, if any); a missing or deleted stream gives a new aggregate. */
  load(id: string): Promise<A>;
  /**
   * Appends the recorded events if the stream is still where the aggregate was loaded, else
   * fails with WrongExpectedRevisionError. On any failure the events are pending again, with
   * their ids: saving again after a lost answer stores them once. Nothing recorded: no call.
   */
  save(aggregate: A): Promise<AppendResult | undefined>;
  exists(id: string): Promise<boolean>;
}

export function createRepository<A extends Aggregate<any>>(options: RepositoryOptions<A>): Repository<A> {
  const { client, create, snapshots } = options;
  const registry = options.registry ?? createEventTypeRegistry();
  const middleware = options.middleware ?? [];
  const schemaVersion = snapshots?.schemaVersion ?? 1;
  const onSnapshotError =
    options.onSnapshotError ??
    ((error: unknown, { stream }: { stream: string }) => process.emitWarning(`snapshot of ${stream} skipped: ${error instanceof Error ? error.message : String(error)}`));
  if (snapshots && !(Number.isSafeInteger(snapshots.every) && snapshots.every > 0)) {
    throw new Error(`snapshots.every must be a positive integer (got ${snapshots.every})`);
  }

  /** Replays the stream from `snapshotRevision` (or its start); false when that revision is no longer in it. */
  async function replayStream(aggregate: A, stream: string, snapshotRevision?: bigint): Promise<boolean> {
    let snapshotChecked = snapshotRevision === undefined;
    try {
      for await (const recorded of client.readStream(stream, { fromRevision: snapshotRevision })) {
        // The snapshot's own event is read to check it is still there: a stream deleted and
        // written again since goes on at later revisions, and the snapshot is of its old life.
        if (!snapshotChecked) {
          if (recorded.revision !== snapshotRevision) return false;
          snapshotChecked = true;
          continue;
        }
        const event = await applyAfterLoad(middleware, registry.decode(recorded));
        aggregate.replay([{ type: event.type, data: event.payload, metadata: event.metadata, revision: event.revision }]);
      }
    } catch (e) {
      if (e instanceof StreamNotFoundError) return snapshotRevision === undefined;
      throw e;
    }
    return snapshotChecked;
  }

  /** The aggregate restored from the stream's snapshot and the events after it; undefined: replay the whole stream. */
  async function loadFromSnapshot(id: string, stream: string): Promise<A | undefined> {
    let aggregate: A;
    let revision: bigint;
    try {
      const snapshot = await latestSnapshot(stream);
      // Another schema version is not an error: it is what a deploy that changed toSnapshot finds.
      if (!snapshot || snapshot.metadata.schemaVersion !== schemaVersion) return undefined;
      revision = BigInt(String(snapshot.metadata.revision));
      aggregate = create(id);
      aggregate.restoreSnapshot(JSON.parse(new TextDecoder().decode(snapshot.data)), revision + 1n);
    } catch (e) {
      onSnapshotError(e, { stream });
      return undefined;
    }
    return (await replayStream(aggregate, stream, revision)) ? aggregate : undefined;
  }

  async function latestSnapshot(stream: string): Promise<RecordedEvent | undefined> {
    try {
      for await (const e of client.readStream(snapshotStream(stream), { direction: "backwards", limit: 1 })) return e;
    } catch (e) {
      if (!(e instanceof StreamNotFoundError)) throw e;
    }
    return undefined;
  }

  /** Serialised now, while the state is that of the events being saved: the aggregate may change while the append runs. */
  function takeSnapshot(aggregate: A, count: number, stream: string): Uint8Array | undefined {
    if (!snapshots) return undefined;
    const every = BigInt(snapshots.every);
    const before = aggregate.storedVersion;
    if (before / every === (before + BigInt(count)) / every) return undefined;
    try {
      return new TextEncoder().encode(JSON.stringify(aggregate.toSnapshot()));
    } catch (e) {
      onSnapshotError(e, { stream });
      return undefined;
    }
  }

  async function writeSnapshot(stream: string, state: Uint8Array, revision: bigint): Promise<void> {
    try {
      await client.append(snapshotStream(stream), [
        { type: SNAPSHOT_TYPE, data: state, contentType: "application/json", metadata: { revision: revision.toString(), schemaVersion } },
      ]);
    } catch (e) {
      onSnapshotError(e, { stream });
    }
  }

  return {
    async load(id) {
      const stream = options.stream(id);
      const fromSnapshot = snapshots ? await loadFromSnapshot(id, stream) : undefined;
      if (fromSnapshot) return fromSnapshot;
      const aggregate = create(id);
      await replayStream(aggregate, stream);
      return aggregate;
    },

    async save(aggregate) {
      // Found on the first save rather than on the Nth event, when the snapshot is due.
      if (snapshots && !aggregate.supportsSnapshots) {
        throw new Error(`${aggregate.constructor.name} does not implement toSnapshot and fromSnapshot, and its repository takes snapshots`);
      }
      const pending = aggregate.popEvents();
      if (pending.length === 0) return undefined;
      const stream = options.stream(aggregate.id);
      const snapshot = takeSnapshot(aggregate, pending.length, stream);
      let events: EventData[];
      let result: AppendResult;
      try {
        events = [];
        for (const e of pending) events.push(await applyBeforeAppend(middleware, registry.toEventData(e), { stream }));
        result = await client.append(stream, events, { expectedRevision: aggregate.expectedRevision });
      } catch (e) {
        aggregate[requeueEvents](pending);
        throw e;
      }
      aggregate[markStored](result.revision);
      if (snapshot) await writeSnapshot(stream, snapshot, result.revision);
      await applyAfterAppend(middleware, asRecorded(stream, events, result), result);
      return result;
    },

    async exists(id) {
      try {
        for await (const _ of client.readStream(options.stream(id), { limit: 1 })) return true;
        return false;
      } catch (e) {
        if (e instanceof StreamNotFoundError) return false;
        throw e;
      }
    },
  };
}

/** Where an aggregate stream's snapshots go: outside its category, so its subscribers never see them. */
export function snapshotStream(stream: string): string {
  return `$snapshot-${stream}`;
}

/** The appended events as a read would return them. */
function asRecorded(stream: string, events: EventData[], result: AppendResult): RecordedEvent[] {
  const first = result.revision - BigInt(events.length - 1);
  return events.map((e, i) => {
    const proposed = toProposedEvent(e);
    return {
      id: result.eventIds[i],
      type: e.type,
      contentType: proposed.contentType ?? "",
      data: proposed.payload?.case === "data" ? proposed.payload.value : new Uint8Array(),
      metadata: e.metadata ?? {},
      stream,
      revision: first + BigInt(i),
      position: result.positions[i],
      storedAt: result.committedAt,
    };
  });
}

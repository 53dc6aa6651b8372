import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import {
  ProjectionStatus as ProtoStatus,
  type Projection,
  type ProjectionService,
} from "../../gen/eventstore/v1/projections_pb";
import { toClientError } from "./errors";

export type ProjectionStatus = "idle" | "running" | "stopping" | "resetting" | "deleting";

/** A projection's record on the server (see ProjectionService in projections.proto). */
export interface ProjectionRecord {
  name: string;
  status: ProjectionStatus;
  state: Uint8Array;
  stateContentType: string;
  initialState: Uint8Array;
  /** The global position processed; 0n: none. */
  position: bigint;
  /** Per source stream, the revision of the last event processed from it. */
  streamRevisions: Map<string, bigint>;
  /** Counts the writes of state and positions; `persist` must name it. */
  version: bigint;
  lease?: { holder: string; expiresAt: Date };
  createdAt: Date;
  updatedAt: Date;
}

export interface ProjectionProgress {
  state: Uint8Array;
  position: bigint;
  streamRevisions: Map<string, bigint>;
}

/** Projection records on the server: any client, in any language, can see and control them. */
export interface ProjectionRecords {
  create(name: string, initialState: Uint8Array, options?: { stateContentType?: string; status?: ProjectionStatus }): Promise<ProjectionRecord>;
  get(name: string): Promise<ProjectionRecord>;
  /** Every record whose name starts with `prefix`, page by page. */
  list(options?: { prefix?: string; pageSize?: number }): AsyncIterable<ProjectionRecord>;
  delete(name: string, options?: { expectedVersion?: bigint }): Promise<void>;
  reset(name: string, options?: { expectedVersion?: bigint }): Promise<ProjectionRecord>;
  /** With `expectedStatus`, only if the record has that status (else WrongExpectedStatusError). */
  /** With `leaseHolder`, only if that runner holds the lease or no live lease is held (else LeaseHeldError). */
  updateStatus(
    name: string,
    status: ProjectionStatus,
    options?: { expectedVersion?: bigint; expectedStatus?: ProjectionStatus; leaseHolder?: string },
  ): Promise<ProjectionRecord>;
  persist(name: string, progress: ProjectionProgress, expectedVersion: bigint, leaseHolder?: string): Promise<ProjectionRecord>;
  acquireLease(name: string, holder: string, ttlMs: number): Promise<ProjectionRecord>;
  releaseLease(name: string, holder: string): Promise<void>;
}

const STATUSES: Record<ProjectionStatus, ProtoStatus> = {
  idle: ProtoStatus.IDLE,
  running: ProtoStatus.RUNNING,
  stopping: ProtoStatus.STOPPING,
  resetting: ProtoStatus.RESETTING,
  deleting: ProtoStatus.DELETING,
};

/**
 * Each call gives up after this long: a runner renews its lease on a timer, and a call that
 * hangs (a silent network) must fail, so the next renewal can try, before the lease runs out.
 */
const CALL_TIMEOUT_MS = 10_000;

export function createProjectionRecords(rpc: Client<typeof ProjectionService>, closed: AbortSignal): ProjectionRecords {
  const callOptions = { signal: closed, timeoutMs: CALL_TIMEOUT_MS };
  async function call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw toClientError(e);
    }
  }
  const record = async (answer: Promise<{ projection?: Projection }>) => fromProjection((await answer).projection);

  return {
    create: (name, initialState, options = {}) =>
      call(() =>
        record(
          rpc.createProjection(
            { name, initialState, stateContentType: options.stateContentType ?? "", status: STATUSES[options.status ?? "idle"] },
            callOptions,
          ),
        ),
      ),
    get: (name) => call(() => record(rpc.getProjection({ name }, callOptions))),
    async *list(options = {}) {
      let pageToken = "";
      do {
        const page = await call(() => rpc.listProjections({ prefix: options.prefix ?? "", pageSize: options.pageSize ?? 0, pageToken }, callOptions));
        for (const p of page.projections) yield fromProjection(p);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
    },
    delete: (name, options = {}) => call(async () => void (await rpc.deleteProjection({ name, expectedVersion: options.expectedVersion }, callOptions))),
    reset: (name, options = {}) => call(() => record(rpc.resetProjection({ name, expectedVersion: options.expectedVersion }, callOptions))),
    updateStatus: (name, status, options = {}) =>
      call(() =>
        record(
          rpc.updateProjectionStatus(
            {
              name,
              status: STATUSES[status],
              expectedVersion: options.expectedVersion,
              expectedStatus: options.expectedStatus ? STATUSES[options.expectedStatus] : ProtoStatus.UNSPECIFIED,
              leaseHolder: options.leaseHolder ?? "",
            },
            callOptions,
          ),
        ),
      ),
    persist: (name, progress, expectedVersion, leaseHolder) =>
      call(() =>
        record(
          rpc.persistProjection(
            {
              name,
              expectedVersion,
              state: progress.state,
              position: progress.position,
              streamRevisions: Object.fromEntries(progress.streamRevisions),
              leaseHolder: leaseHolder ?? "",
            },
            callOptions,
          ),
        ),
      ),
    acquireLease: (name, holder, ttlMs) => call(() => record(rpc.acquireProjectionLease({ name, holder, ttlMs }, callOptions))),
    releaseLease: (name, holder) => call(async () => void (await rpc.releaseProjectionLease({ name, holder }, callOptions))),
  };
}

function fromProjection(p: Projection | undefined): ProjectionRecord {
  if (!p) throw new Error("the server answered without a projection");
  const status = (Object.keys(STATUSES) as ProjectionStatus[]).find((s) => STATUSES[s] === p.status);
  if (!status) throw new Error(`the server answered an unknown projection status ${p.status}`);
  return {
    name: p.name,
    status,
    state: p.state,
    stateContentType: p.stateContentType,
    initialState: p.initialState,
    position: p.position,
    streamRevisions: new Map(Object.entries(p.streamRevisions)),
    version: p.version,
    lease: p.lease ? { holder: p.lease.holder, expiresAt: p.lease.expiresAt ? timestampDate(p.lease.expiresAt) : new Date(0) } : undefined,
    createdAt: p.createdAt ? timestampDate(p.createdAt) : new Date(0),
    updatedAt: p.updatedAt ? timestampDate(p.updatedAt) : new Date(0),
  };
}

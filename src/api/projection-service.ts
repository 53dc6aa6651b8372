import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  ProjectionService,
  ProjectionStatus as ProtoStatus,
  type ProjectionSchema,
} from "../../gen/eventstore/v1/projections_pb";
import { invalidArgument, JSON_CONTENT_TYPE, type Logger, type ProjectionRecord, type ProjectionStatus } from "../domain";
import type { ProjectionStore } from "../store";
import { toConnectError } from "./connect-error";
import { decodePageToken, encodePageToken, toPageSize } from "./page-token";

export interface ProjectionServiceOptions {
  projections: ProjectionStore;
  log: Logger;
}

/** Serves eventstore.v1.ProjectionService on the store's projection records. */
export function registerProjectionService(router: ConnectRouter, { projections, log }: ProjectionServiceOptions): void {
  async function unary<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw toConnectError(e, log);
    }
  }
  const answer = async (record: Promise<ProjectionRecord>) => ({ projection: fromProjection(await record) });

  router.service(ProjectionService, {
    createProjection: (req) =>
      unary(() =>
        answer(
          projections.create({
            name: req.name,
            initialState: req.initialState,
            stateContentType: req.stateContentType || JSON_CONTENT_TYPE,
            status: req.status === ProtoStatus.UNSPECIFIED ? "idle" : toStatus(req.status),
          }),
        ),
      ),
    getProjection: (req) => unary(() => answer(projections.get(req.name))),
    listProjections: (req) =>
      unary(async () => {
        const pageSize = toPageSize(req.pageSize);
        const after = req.pageToken === "" ? undefined : decodePageToken(req.pageToken, req.prefix);
        const page = await projections.list({ prefix: req.prefix, pageSize, after });
        return {
          projections: page.projections.map(fromProjection),
          nextPageToken: page.last === undefined ? "" : encodePageToken(page.last, req.prefix),
        };
      }),
    deleteProjection: (req) => unary(async () => (await projections.delete(req.name, req.expectedVersion), {})),
    resetProjection: (req) => unary(() => answer(projections.reset(req.name, req.expectedVersion))),
    updateProjectionStatus: (req) =>
      unary(() =>
        answer(
          projections.updateStatus(req.name, toStatus(req.status), {
            version: req.expectedVersion,
            status: req.expectedStatus === ProtoStatus.UNSPECIFIED ? undefined : toStatus(req.expectedStatus),
            holder: req.leaseHolder === "" ? undefined : req.leaseHolder,
          }),
        ),
      ),
    persistProjection: (req) =>
      unary(() =>
        answer(
          projections.persist(
            req.name,
            { state: req.state, position: req.position, streamRevisions: new Map(Object.entries(req.streamRevisions)) },
            req.expectedVersion,
            req.leaseHolder === "" ? undefined : req.leaseHolder,
          ),
        ),
      ),
    acquireProjectionLease: (req) => unary(() => answer(projections.acquireLease(req.name, req.holder, req.ttlMs))),
    releaseProjectionLease: (req) => unary(async () => (await projections.releaseLease(req.name, req.holder), {})),
  });
}

const STATUSES: Record<ProjectionStatus, ProtoStatus> = {
  idle: ProtoStatus.IDLE,
  running: ProtoStatus.RUNNING,
  stopping: ProtoStatus.STOPPING,
  resetting: ProtoStatus.RESETTING,
  deleting: ProtoStatus.DELETING,
};

function toStatus(status: ProtoStatus): ProjectionStatus {
  const found = (Object.keys(STATUSES) as ProjectionStatus[]).find((s) => STATUSES[s] === status);
  if (!found) throw invalidArgument("status", "a status is IDLE, RUNNING, STOPPING, RESETTING or DELETING");
  return found;
}

function fromProjection(p: ProjectionRecord): MessageInitShape<typeof ProjectionSchema> {
  return {
    name: p.name,
    status: STATUSES[p.status],
    state: p.state,
    stateContentType: p.stateContentType,
    initialState: p.initialState,
    position: p.position,
    streamRevisions: Object.fromEntries(p.streamRevisions),
    version: p.version,
    lease: p.lease ? { holder: p.lease.holder, expiresAt: timestampFromDate(p.lease.expiresAt) } : undefined,
    createdAt: timestampFromDate(p.createdAt),
    updatedAt: timestampFromDate(p.updatedAt),
  };
}

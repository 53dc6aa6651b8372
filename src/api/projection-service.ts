import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import {
  ProjectionService,
  ProjectionStatus as ProtoStatus,
  type ProjectionSchema,
} from "../../gen/eventstore/v1/projections_pb";
import {
  invalidArgument,
  JSON_CONTENT_TYPE,
  requireStorableText,
  type Logger,
  type Permission,
  type Principal,
  type ProjectionRecord,
  type ProjectionStatus,
} from "../domain";
import type { ProjectionStore } from "../store";
import { toConnectError } from "./connect-error";
import type { Guard } from "./guard";
import { decodePageToken, encodePageToken, toPageSize } from "./page-token";
import { toStoredNumber } from "./proto-to-domain";

export interface ProjectionServiceOptions {
  projections: ProjectionStore;
  log: Logger;
  /** Who may do what: asked first by every method. */
  guard: Guard;
}

/** Serves eventstore.v1.ProjectionService on the store's projection records. */
export function registerProjectionService(router: ConnectRouter, { projections, log, guard }: ProjectionServiceOptions): void {
  async function unary<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      throw toConnectError(e, log);
    }
  }
  const answer = async (record: Promise<ProjectionRecord>) => ({ projection: fromProjection(await record) });
  const allowed = (ctx: HandlerContext, permission: Permission, name: string) =>
    guard.authorize(ctx, permission, { kind: "projection", name });

  /** A projection control, recorded in the audit log with its outcome. */
  const control = <T>(action: string, principal: Principal, name: string, work: () => Promise<T>, fields?: Record<string, unknown>) =>
    guard.audited(action, principal, { kind: "projection", name }, work, fields);

  router.service(ProjectionService, {
    createProjection: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.admin", req.name);
        return answer(
          control("create_projection", principal, req.name, () =>
            projections.create({
              name: req.name,
              initialState: req.initialState,
              stateContentType: requireStorableText(req.stateContentType, "state_content_type") || JSON_CONTENT_TYPE,
              status: req.status === ProtoStatus.UNSPECIFIED ? "idle" : toStatus(req.status),
            }),
          ),
        );
      }),
    getProjection: (req, ctx) =>
      unary(async () => {
        await allowed(ctx, "projection.read", req.name);
        return answer(projections.get(req.name));
      }),
    listProjections: (req, ctx) =>
      unary(async () => {
        requireStorableText(req.prefix, "prefix");
        await allowed(ctx, "projection.read", `${req.prefix}*`);
        const pageSize = toPageSize(req.pageSize);
        const after = req.pageToken === "" ? undefined : decodePageToken(req.pageToken, req.prefix);
        const page = await projections.list({ prefix: req.prefix, pageSize, after });
        return {
          projections: page.projections.map(fromProjection),
          nextPageToken: page.last === undefined ? "" : encodePageToken(page.last, req.prefix),
        };
      }),
    deleteProjection: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.admin", req.name);
        await control("delete_projection", principal, req.name, () => projections.delete(req.name, optionalVersion(req.expectedVersion)));
        return {};
      }),
    resetProjection: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.admin", req.name);
        return answer(control("reset_projection", principal, req.name, () => projections.reset(req.name, optionalVersion(req.expectedVersion))));
      }),
    updateProjectionStatus: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.run", req.name);
        const status = toStatus(req.status);
        return answer(
          control("update_projection_status", principal, req.name, () =>
            projections.updateStatus(req.name, status, {
              version: optionalVersion(req.expectedVersion),
              status: req.expectedStatus === ProtoStatus.UNSPECIFIED ? undefined : toStatus(req.expectedStatus),
              holder: req.leaseHolder === "" ? undefined : requireStorableText(req.leaseHolder, "lease_holder"),
            }),
          { status }),
        );
      }),
    persistProjection: (req, ctx) =>
      unary(async () => {
        await allowed(ctx, "projection.run", req.name);
        return answer(
          projections.persist(
            req.name,
            {
              state: req.state,
              position: toStoredNumber(req.position, "position"),
              streamRevisions: new Map(Object.entries(req.streamRevisions).map(([s, r]) => [s, toStoredNumber(r, `stream_revisions[${s}]`)])),
            },
            toStoredNumber(req.expectedVersion, "expected_version"),
            req.leaseHolder === "" ? undefined : requireStorableText(req.leaseHolder, "lease_holder"),
          ),
        );
      }),
    acquireProjectionLease: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.run", req.name);
        return answer(control("acquire_projection_lease", principal, req.name, () => projections.acquireLease(req.name, requireStorableText(req.holder, "holder"), req.ttlMs), { holder: req.holder }));
      }),
    releaseProjectionLease: (req, ctx) =>
      unary(async () => {
        const principal = await allowed(ctx, "projection.run", req.name);
        await control("release_projection_lease", principal, req.name, () => projections.releaseLease(req.name, requireStorableText(req.holder, "holder")), { holder: req.holder });
        return {};
      }),
  });
}

function optionalVersion(version: bigint | undefined): bigint | undefined {
  return version === undefined ? undefined : toStoredNumber(version, "expected_version");
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

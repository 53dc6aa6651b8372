import {
  PROJECTION_STATUSES,
  invalidArgument,
  validateLeaseHolder,
  validateLeaseTtl,
  validateProjectionName,
  validateProjectionProgress,
  validateProjectionState,
  type Limits,
  type ProjectionStatus,
} from "../../domain";
import type { ProjectionStore } from "../projection-store";
import { guard as guardWith, type ErrorContext } from "./database-error";
import {
  acquireProjectionLease,
  createProjection,
  deleteProjection,
  getProjection,
  listProjections,
  persistProjection,
  releaseProjectionLease,
  resetProjection,
  updateProjectionStatus,
} from "./projections";
import type { Sql } from "./sql";

/** The projection records on PostgreSQL: every input validated, every failure a store error. */
export function createPostgresProjectionStore(sql: Sql, limits: Limits, errors: ErrorContext = {}): ProjectionStore {
  const guard = <T>(work: () => T | Promise<T>) => guardWith(work, errors);
  return {
    create: (p) =>
      guard(() => {
        validateProjectionName(p.name);
        validateProjectionState(p.initialState, limits, "initial_state");
        validateStatus(p.status);
        return createProjection(sql, p);
      }),
    get: (name) => guard(() => getProjection(sql, validateProjectionName(name))),
    list: (options) => guard(() => listProjections(sql, options)),
    delete: (name, expectedVersion) => guard(() => deleteProjection(sql, validateProjectionName(name), expectedVersion)),
    reset: (name, expectedVersion) => guard(() => resetProjection(sql, validateProjectionName(name), expectedVersion)),
    updateStatus: (name, status, expected = {}) =>
      guard(() => {
        if (expected.status !== undefined) validateStatus(expected.status);
        if (expected.holder !== undefined) validateLeaseHolder(expected.holder, "lease_holder");
        return updateProjectionStatus(sql, validateProjectionName(name), validateStatus(status), expected);
      }),
    persist: (name, progress, expectedVersion, holder) =>
      guard(() => {
        validateProjectionName(name);
        validateProjectionProgress(progress, limits);
        if (holder !== undefined) validateLeaseHolder(holder, "lease_holder");
        return persistProjection(sql, name, progress, expectedVersion, holder);
      }),
    acquireLease: (name, holder, ttlMs) =>
      guard(() => {
        validateProjectionName(name);
        validateLeaseHolder(holder);
        validateLeaseTtl(ttlMs);
        return acquireProjectionLease(sql, name, holder, ttlMs);
      }),
    releaseLease: (name, holder) =>
      guard(() => {
        validateProjectionName(name);
        validateLeaseHolder(holder);
        return releaseProjectionLease(sql, name, holder);
      }),
  };
}

function validateStatus(status: ProjectionStatus): ProjectionStatus {
  if (!PROJECTION_STATUSES.includes(status)) throw invalidArgument("status", `a status is one of ${PROJECTION_STATUSES.join(", ")}`);
  return status;
}

import type { ProjectionProgress, ProjectionRecord, ProjectionStatus } from "../domain";

export interface NewProjection {
  name: string;
  initialState: Uint8Array;
  stateContentType: string;
  status: ProjectionStatus;
}

export interface ListProjectionsOptions {
  prefix: string;
  pageSize: number;
  /** List names after this one (the last name of the previous page). */
  after?: string;
}

export interface ProjectionPage {
  projections: ProjectionRecord[];
  /** The last name of this page when more may follow. */
  last?: string;
}

/**
 * The projection records' port. Every write names the record; `expectedVersion`, where taken,
 * makes it conditional (WRONG_EXPECTED_VERSION otherwise), and `holder` makes it yield to a
 * live lease held by someone else (LEASE_HELD).
 */
export interface ProjectionStore {
  create(projection: NewProjection): Promise<ProjectionRecord>;
  get(name: string): Promise<ProjectionRecord>;
  list(options: ListProjectionsOptions): Promise<ProjectionPage>;
  delete(name: string, expectedVersion?: bigint): Promise<void>;
  reset(name: string, expectedVersion?: bigint): Promise<ProjectionRecord>;
  updateStatus(
    name: string,
    status: ProjectionStatus,
    expected?: { version?: bigint; status?: ProjectionStatus; holder?: string },
  ): Promise<ProjectionRecord>;
  persist(name: string, progress: ProjectionProgress, expectedVersion: bigint, holder?: string): Promise<ProjectionRecord>;
  acquireLease(name: string, holder: string, ttlMs: number): Promise<ProjectionRecord>;
  releaseLease(name: string, holder: string): Promise<void>;
}

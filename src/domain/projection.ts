import { invalidArgument, limitExceeded } from "./errors";
import type { Limits } from "./limits";
import { MAX_STREAM_NAME_LENGTH, validateStreamName } from "./stream-name";

/** What a projection is doing, or is asked to do (see proto/eventstore/v1/projections.proto). */
export type ProjectionStatus = "idle" | "running" | "stopping" | "resetting" | "deleting";

export const PROJECTION_STATUSES: readonly ProjectionStatus[] = ["idle", "running", "stopping", "resetting", "deleting"];

export interface ProjectionLease {
  holder: string;
  expiresAt: Date;
}

/** A projection's record: its state and positions, its status and its runner's lease. */
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
  /** Counts the writes of state and positions: the guard against two writers. */
  version: bigint;
  /** Unset when no live lease is held. */
  lease?: ProjectionLease;
  createdAt: Date;
  updatedAt: Date;
}

/** What a runner persists in one write. */
export interface ProjectionProgress {
  state: Uint8Array;
  position: bigint;
  streamRevisions: Map<string, bigint>;
}

export const MAX_LEASE_HOLDER_LENGTH = 256;
export const MIN_LEASE_TTL_MS = 1_000;
export const MAX_LEASE_TTL_MS = 3_600_000;

// C0 and C1 control characters, and DEL.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Projection names follow the stream-name rules: 1..256 characters, no control characters. */
export function validateProjectionName(name: string, field = "name"): string {
  if (name.length === 0) throw invalidArgument(field, "a projection name must not be empty");
  if ([...name].length > MAX_STREAM_NAME_LENGTH || CONTROL.test(name)) {
    throw invalidArgument(field, `a projection name is 1..${MAX_STREAM_NAME_LENGTH} characters without control characters`);
  }
  return name;
}

export function validateProjectionState(state: Uint8Array, limits: Limits, field = "state"): Uint8Array {
  if (state.byteLength > limits.maxProjectionStateBytes) {
    throw limitExceeded(field, String(limits.maxProjectionStateBytes), String(state.byteLength),
      `a projection state is at most ${limits.maxProjectionStateBytes} bytes (got ${state.byteLength})`);
  }
  return state;
}

export function validateProjectionProgress(progress: ProjectionProgress, limits: Limits): ProjectionProgress {
  validateProjectionState(progress.state, limits);
  if (progress.streamRevisions.size > limits.maxProjectionStreams) {
    throw limitExceeded("stream_revisions", String(limits.maxProjectionStreams), String(progress.streamRevisions.size),
      `a projection tracks at most ${limits.maxProjectionStreams} streams (got ${progress.streamRevisions.size})`);
  }
  for (const stream of progress.streamRevisions.keys()) validateStreamName(stream, "stream_revisions");
  return progress;
}

export function validateLeaseHolder(holder: string, field = "holder"): string {
  if (holder.length === 0) throw invalidArgument(field, "a lease holder must not be empty");
  if ([...holder].length > MAX_LEASE_HOLDER_LENGTH) {
    throw invalidArgument(field, `a lease holder is at most ${MAX_LEASE_HOLDER_LENGTH} characters`);
  }
  return holder;
}

export function validateLeaseTtl(ttlMs: number): number {
  if (!Number.isInteger(ttlMs) || ttlMs < MIN_LEASE_TTL_MS || ttlMs > MAX_LEASE_TTL_MS) {
    throw invalidArgument("ttl_ms", `a lease lasts ${MIN_LEASE_TTL_MS}..${MAX_LEASE_TTL_MS} ms (got ${ttlMs})`);
  }
  return ttlMs;
}

import { EventStoreError, type ProjectionProgress, type ProjectionRecord, type ProjectionStatus } from "../../domain";
import type { ProjectionPage, ListProjectionsOptions, NewProjection } from "../projection-store";
import type { Sql } from "./sql";

interface ProjectionRow {
  name: string;
  status: ProjectionStatus;
  state: Buffer;
  state_content_type: string;
  initial_state: Buffer;
  position: bigint;
  /** JSON text: {"stream": "revision"}. */
  stream_revisions: string;
  version: bigint;
  lease_holder: string | null;
  lease_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/** The record's columns; an expired lease reads as none. */
function columns(sql: Sql) {
  return sql`
    name, status, state, state_content_type, initial_state, position, stream_revisions::text, version,
    case when lease_expires_at > clock_timestamp() then lease_holder end as lease_holder,
    case when lease_expires_at > clock_timestamp() then lease_expires_at end as lease_expires_at,
    created_at, updated_at`;
}

function toRecord(row: ProjectionRow): ProjectionRecord {
  return {
    name: row.name,
    status: row.status,
    state: row.state,
    stateContentType: row.state_content_type,
    initialState: row.initial_state,
    position: row.position,
    streamRevisions: new Map(Object.entries(JSON.parse(row.stream_revisions) as Record<string, string>).map(([s, r]) => [s, BigInt(r)])),
    version: row.version,
    lease: row.lease_holder && row.lease_expires_at ? { holder: row.lease_holder, expiresAt: row.lease_expires_at } : undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export async function createProjection(sql: Sql, p: NewProjection): Promise<ProjectionRecord> {
  const [row] = await sql<ProjectionRow[]>`
    insert into eventstore.projections (name, status, state, state_content_type, initial_state)
    values (${p.name}, ${p.status}, ${p.initialState}, ${p.stateContentType}, ${p.initialState})
    on conflict (name) do nothing
    returning ${columns(sql)}`;
  if (!row) throw new EventStoreError("PROJECTION_EXISTS", `Projection ${p.name} already exists`, { name: p.name });
  return toRecord(row);
}

export async function getProjection(sql: Sql, name: string): Promise<ProjectionRecord> {
  const [row] = await sql<ProjectionRow[]>`select ${columns(sql)} from eventstore.projections where name = ${name}`;
  if (!row) throw notFound(name);
  return toRecord(row);
}

export async function listProjections(sql: Sql, options: ListProjectionsOptions): Promise<ProjectionPage> {
  const rows = await sql<ProjectionRow[]>`
    select ${columns(sql)} from eventstore.projections
     where starts_with(name, ${options.prefix}::text)
       ${options.after !== undefined ? sql`and name > ${options.after}` : sql``}
     order by name limit ${options.pageSize + 1}`;
  const more = rows.length > options.pageSize;
  const projections = rows.slice(0, options.pageSize).map(toRecord);
  return { projections, last: more ? projections[projections.length - 1].name : undefined };
}

export async function deleteProjection(sql: Sql, name: string, expectedVersion?: bigint): Promise<void> {
  const rows = await sql`
    delete from eventstore.projections where name = ${name} ${versionIs(sql, expectedVersion)} returning name`;
  if (rows.length === 0) await explainMiss(sql, name, expectedVersion);
}

export async function resetProjection(sql: Sql, name: string, expectedVersion?: bigint): Promise<ProjectionRecord> {
  const [row] = await sql<ProjectionRow[]>`
    update eventstore.projections
       set state = initial_state, position = 0, stream_revisions = '{}', version = version + 1, updated_at = clock_timestamp()
     where name = ${name} ${versionIs(sql, expectedVersion)}
    returning ${columns(sql)}`;
  return row ? toRecord(row) : explainMiss(sql, name, expectedVersion);
}

export async function updateProjectionStatus(
  sql: Sql,
  name: string,
  status: ProjectionStatus,
  expected: { version?: bigint; status?: ProjectionStatus; holder?: string },
): Promise<ProjectionRecord> {
  const [row] = await sql<ProjectionRow[]>`
    update eventstore.projections set status = ${status}, updated_at = clock_timestamp()
     where name = ${name} ${versionIs(sql, expected.version)} ${leaseAllows(sql, expected.holder)}
       ${expected.status === undefined ? sql`` : sql`and status = ${expected.status}`}
    returning ${columns(sql)}`;
  if (row) return toRecord(row);
  const [found] = await sql<ProjectionRow[]>`select ${columns(sql)} from eventstore.projections where name = ${name}`;
  if (found && expected.status !== undefined && found.status !== expected.status) {
    throw new EventStoreError(
      "WRONG_EXPECTED_STATUS",
      `Wrong expected status: ${expected.status} (projection ${name}, actual ${found.status})`,
      { name, expected_status: expected.status, actual_status: found.status },
    );
  }
  return explainMiss(sql, name, expected.version, expected.holder);
}

/** Writes state and positions in one statement, if the version matches and no one else holds a live lease. */
export async function persistProjection(
  sql: Sql,
  name: string,
  progress: ProjectionProgress,
  expectedVersion: bigint,
  holder?: string,
): Promise<ProjectionRecord> {
  const revisions = Object.fromEntries([...progress.streamRevisions].map(([s, r]) => [s, r.toString()]));
  const [row] = await sql<ProjectionRow[]>`
    update eventstore.projections
       set state = ${progress.state}, position = ${progress.position}, stream_revisions = ${sql.json(revisions)},
           version = version + 1, updated_at = clock_timestamp()
     where name = ${name} and version = ${expectedVersion} ${leaseAllows(sql, holder)}
    returning ${columns(sql)}`;
  return row ? toRecord(row) : explainMiss(sql, name, expectedVersion, holder);
}

export async function acquireProjectionLease(sql: Sql, name: string, holder: string, ttlMs: number): Promise<ProjectionRecord> {
  for (let attempt = 1; ; attempt++) {
    const [row] = await sql<ProjectionRow[]>`
      update eventstore.projections
         set lease_holder = ${holder}, lease_expires_at = clock_timestamp() + ${ttlMs} * interval '1 millisecond'
       where name = ${name} ${leaseAllows(sql, holder)}
      returning ${columns(sql)}`;
    if (row) return toRecord(row);
    // Refused because the lease is held, or the record is gone: say which. If neither holds
    // any more (the lease expired or was released in between), try again.
    const why = await whyMissed(sql, name, undefined, holder);
    if (why) throw why;
    if (attempt >= 3) throw changedDuringWrite(name);
  }
}

/** Gives the lease up; a no-op when the holder holds none. */
export async function releaseProjectionLease(sql: Sql, name: string, holder: string): Promise<void> {
  const rows = await sql`
    update eventstore.projections set lease_holder = null, lease_expires_at = null
     where name = ${name} and (lease_holder = ${holder} or lease_holder is null or lease_expires_at <= clock_timestamp())
    returning name`;
  if (rows.length > 0) return;
  // Held by another: LEASE_HELD; gone: NOT_FOUND. Freed in between: nothing left to release.
  const why = await whyMissed(sql, name, undefined, holder);
  if (why) throw why;
}

function versionIs(sql: Sql, expectedVersion: bigint | undefined) {
  return expectedVersion === undefined ? sql`` : sql`and version = ${expectedVersion}`;
}

function leaseAllows(sql: Sql, holder: string | undefined) {
  return holder === undefined
    ? sql``
    : sql`and (lease_holder is null or lease_holder = ${holder} or lease_expires_at <= clock_timestamp())`;
}

/** A guarded write matched no row: throws why, with the facts. */
async function explainMiss(sql: Sql, name: string, expectedVersion?: bigint, holder?: string): Promise<never> {
  throw (await whyMissed(sql, name, expectedVersion, holder)) ?? changedDuringWrite(name, expectedVersion);
}

/**
 * Why a guarded write matched no row: the record is gone, at another version, or leased to
 * another runner. Undefined when none of these holds now: the row changed between the write
 * and this read (a lease expired or was released), and the write may simply be tried again.
 */
async function whyMissed(sql: Sql, name: string, expectedVersion?: bigint, holder?: string): Promise<EventStoreError | undefined> {
  const [row] = await sql<ProjectionRow[]>`select ${columns(sql)} from eventstore.projections where name = ${name}`;
  if (!row) return notFound(name);
  if (expectedVersion !== undefined && row.version !== expectedVersion) {
    return new EventStoreError(
      "WRONG_EXPECTED_VERSION",
      `Wrong expected version: ${expectedVersion} (projection ${name}, actual ${row.version})`,
      { name, expected_version: String(expectedVersion), actual_version: String(row.version) },
    );
  }
  if (holder !== undefined && row.lease_holder !== null && row.lease_holder !== holder && row.lease_expires_at) {
    return new EventStoreError(
      "LEASE_HELD",
      `Projection ${name} is leased to ${row.lease_holder} until ${row.lease_expires_at.toISOString()}`,
      { name, holder: row.lease_holder, expires_at: row.lease_expires_at.toISOString() },
    );
  }
  return undefined;
}

function changedDuringWrite(name: string, expectedVersion?: bigint) {
  const facts: Record<string, string> = { name };
  if (expectedVersion !== undefined) facts.expected_version = String(expectedVersion);
  return new EventStoreError("WRONG_EXPECTED_VERSION", `Projection ${name} changed during the write; retry`, facts);
}

function notFound(name: string) {
  return new EventStoreError("PROJECTION_NOT_FOUND", `Projection ${name} not found`, { name });
}

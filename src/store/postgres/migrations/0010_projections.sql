-- Projection records: a projection's state and positions (written together, guarded by
-- `version`), its status, and the lease of the one runner allowed to run it. Lease times are
-- the database's clock, the one clock every server shares.
create table eventstore.projections (
  name text collate "C" primary key,
  status text not null check (status in ('idle', 'running', 'stopping', 'resetting', 'deleting')),
  state bytea not null,
  state_content_type text not null,
  initial_state bytea not null,
  position bigint not null default 0 check (position >= 0),
  -- {"stream": "revision", ...}: revisions as decimal strings, so no JSON reader rounds them.
  stream_revisions jsonb not null default '{}',
  version bigint not null default 1 check (version >= 1),
  lease_holder text,
  lease_expires_at timestamptz,
  created_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp(),
  check ((lease_holder is null) = (lease_expires_at is null))
);

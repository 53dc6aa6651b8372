-- One row per stream: its head, and the row every writer of the stream locks first.
create schema if not exists eventstore;

create table eventstore.streams (
  name text collate "C" primary key,
  -- Revision of the last event ever appended; -1 before the first.
  revision bigint not null default -1,
  -- Global position of the last event ever appended.
  position bigint,
  -- Reads start here: a soft delete moves it past the old last revision, so that a later append
  -- continues the revisions while readers see only the new events.
  first_revision bigint not null default 0,
  deleted boolean not null default false,
  tombstoned boolean not null default false,
  created_at timestamptz not null default clock_timestamp(),
  updated_at timestamptz not null default clock_timestamp()
);

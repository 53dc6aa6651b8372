-- The log. Positions are dense and commit in order (see 0003_log.sql), so readers page by
-- position alone and never see an event appear behind a position they passed.
create table eventstore.events (
  position bigint primary key,
  stream text collate "C" not null,
  revision bigint not null,
  id uuid not null,
  type text not null,
  content_type text not null,
  data bytea not null,
  metadata jsonb not null,
  stored_at timestamptz not null,
  constraint events_stream_revision_key unique (stream, revision),
  constraint events_id_key unique (id)
);

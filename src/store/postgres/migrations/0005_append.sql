-- Appends to one or more streams in one call, all or nothing.
--
-- Append i writes p_counts[i] events to p_streams[i] if the stream satisfies p_expected[i]
-- (-2 any, -1 no stream, -4 stream exists, n >= 0 exact revision). Event arrays are the
-- concatenation of every append's events, in order.
--
-- Order of work, and why:
--   1. lock the stream rows, in name order (two multi-stream appends never deadlock);
--   2. per append: tombstone check, idempotent replay, expected revision: a losing writer fails
--      here, before it takes a position, so it never holds the log lock;
--   3. lock the log head and take consecutive positions for every new event;
--   4. insert, move the stream heads, and notify once with the last position (a wake-up only).
--
-- Returns one row per append, in order: replayed rows carry the original result.
create function eventstore.append(
  p_streams text[],
  p_expected bigint[],
  p_counts int[],
  p_ids uuid[],
  p_types text[],
  p_content_types text[],
  p_data bytea[],
  p_metadata jsonb[]
) returns table (stream text, revision bigint, first_position bigint, stored_at timestamptz, replayed boolean)
language plpgsql as $$
declare
  n int := coalesce(array_length(p_streams, 1), 0);
  s eventstore.streams;
  actual bigint;
  expected bigint;
  first_at int[] := array[]::int[];
  is_replay boolean[] := array[]::boolean[];
  replay_revision bigint[] := array[]::bigint[];
  replay_position bigint[] := array[]::bigint[];
  replay_at timestamptz[] := array[]::timestamptz[];
  offs int := 0;
  total int := 0;
  found_count int;
  same_place boolean;
  min_revision bigint;
  max_revision bigint;
  min_position bigint;
  found_at timestamptz;
  head bigint;
  ts timestamptz;
  i int;
begin
  insert into eventstore.streams (name)
    select distinct u.name from unnest(p_streams) as u(name) order by 1
    on conflict do nothing;
  perform 1 from eventstore.streams t where t.name = any(p_streams) order by t.name for update;

  for i in 1 .. n loop
    first_at := first_at || (offs + 1);
    select * into s from eventstore.streams t where t.name = p_streams[i];
    if s.tombstoned then
      raise exception 'stream % is tombstoned', p_streams[i]
        using errcode = 'ES002', detail = json_build_object('stream', p_streams[i])::text;
    end if;
    actual := case when s.deleted then -1 else s.revision end;
    expected := p_expected[i];

    -- Idempotent retry: every id already stored, in this stream, consecutively and in order,
    -- where the expected revision says they would go.
    select count(*)::int, bool_and(e.stream = p_streams[i] and e.revision - u.k = e0.revision - 1),
           min(e.revision), max(e.revision), min(e.position), min(e.stored_at)
      into found_count, same_place, min_revision, max_revision, min_position, found_at
      from unnest(p_ids[offs + 1 : offs + p_counts[i]]) with ordinality as u(id, k)
      join eventstore.events e on e.id = u.id
      left join lateral (
        select x.revision from eventstore.events x where x.id = p_ids[offs + 1]
      ) e0 on true;
    if found_count > 0 then
      if found_count = p_counts[i] and same_place
         and (expected = -2
              or (expected = -1 and min_revision = s.first_revision)
              or (expected = -4 and min_revision > s.first_revision)
              or (expected >= 0 and min_revision = expected + 1)) then
        is_replay := is_replay || true;
        replay_revision := replay_revision || max_revision;
        replay_position := replay_position || min_position;
        replay_at := replay_at || found_at;
        offs := offs + p_counts[i];
        continue;
      end if;
      raise exception 'event id already stored elsewhere'
        using errcode = 'ES003', detail = json_build_object(
          'stream', p_streams[i],
          'event_id', (select e.id from eventstore.events e
                         where e.id = any(p_ids[offs + 1 : offs + p_counts[i]]) limit 1))::text;
    end if;

    if not (expected = -2
            or (expected = -1 and actual = -1)
            or (expected = -4 and actual <> -1)
            or (expected >= 0 and actual = expected)) then
      raise exception 'wrong expected revision'
        using errcode = 'ES001', detail = json_build_object(
          'stream', p_streams[i], 'expected', expected, 'actual', actual)::text;
    end if;

    is_replay := is_replay || false;
    replay_revision := replay_revision || null::bigint;
    replay_position := replay_position || null::bigint;
    replay_at := replay_at || null::timestamptz;
    offs := offs + p_counts[i];
    total := total + p_counts[i];
  end loop;

  if total > 0 then
    update eventstore.log set position = log.position + total returning log.position - total into head;
    -- Taken under the log lock, so stored_at never decreases along the log.
    ts := date_trunc('milliseconds', clock_timestamp());
  end if;

  for i in 1 .. n loop
    if is_replay[i] then
      stream := p_streams[i];
      revision := replay_revision[i];
      first_position := replay_position[i];
      stored_at := replay_at[i];
      replayed := true;
      return next;
      continue;
    end if;
    select * into s from eventstore.streams t where t.name = p_streams[i];
    insert into eventstore.events (position, stream, revision, id, type, content_type, data, metadata, stored_at)
      select head + u.k, p_streams[i], s.revision + u.k, u.id, u.type, u.content_type, u.data, u.metadata, ts
        from unnest(
          p_ids[first_at[i] : first_at[i] + p_counts[i] - 1],
          p_types[first_at[i] : first_at[i] + p_counts[i] - 1],
          p_content_types[first_at[i] : first_at[i] + p_counts[i] - 1],
          p_data[first_at[i] : first_at[i] + p_counts[i] - 1],
          p_metadata[first_at[i] : first_at[i] + p_counts[i] - 1]
        ) with ordinality as u(id, type, content_type, data, metadata, k);
    update eventstore.streams t
       set revision = s.revision + p_counts[i], position = head + p_counts[i],
           deleted = false, updated_at = ts
     where t.name = p_streams[i];
    stream := p_streams[i];
    revision := s.revision + p_counts[i];
    first_position := head + 1;
    stored_at := ts;
    replayed := false;
    head := head + p_counts[i];
    return next;
  end loop;

  if total > 0 then
    perform pg_notify('eventstore_events', head::text);
  end if;
end;
$$;

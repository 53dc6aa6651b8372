-- eventstore.append_batch as in 0011, with one more check on an idempotent retry: an append
-- whose ids are all stored where a retry would find them is a retry only if every event is the
-- same again (type, content type, data byte for byte, metadata as jsonb compares it: key order
-- and number spelling aside). Otherwise nothing is written and the append fails with ES006
-- (stream, event_id: the first event that differs): the same id for a different event is the
-- client's bug, and answering it as a retry dropped the new event without a word. The query
-- runs only when one of the ids is stored at all, as in 0011.
-- Everything else, and every comment of 0009 and 0011 on what the function does, holds.
create or replace function eventstore.append_batch(
  p_group_sizes int[],
  p_streams text[],
  p_expected bigint[],
  p_counts int[],
  p_ids uuid[],
  p_types text[],
  p_content_types text[],
  p_data bytea[],
  p_metadata jsonb[]
) returns table (
  stream text, revision bigint, first_position bigint, stored_at timestamptz, replayed boolean,
  error_code text, error_detail text
)
language plpgsql
set enable_hashjoin = off
set enable_mergejoin = off
set enable_seqscan = off
set jit = off
as $$
declare
  n int := coalesce(array_length(p_streams, 1), 0);
  groups int := coalesce(array_length(p_group_sizes, 1), 0);
  first_event int[] := array_fill(0, array[n]);
  is_replay boolean[] := array_fill(false, array[n]);
  replay_revision bigint[] := array_fill(null::bigint, array[n]);
  replay_position bigint[] := array_fill(null::bigint, array[n]);
  replay_at timestamptz[] := array_fill(null::timestamptz, array[n]);
  s eventstore.streams;
  actual bigint;
  expected bigint;
  found_count int;
  same_place boolean;
  same_events boolean;
  min_revision bigint;
  max_revision bigint;
  min_position bigint;
  found_at timestamptz;
  failed_code text;
  failed_detail text;
  head bigint;
  ts timestamptz;
  group_start int := 1;
  any_failed boolean := false;
  group_end int;
  offs int := 0;
  g int;
  i int;
begin
  for i in 1 .. n loop
    first_event[i] := offs + 1;
    offs := offs + p_counts[i];
  end loop;

  insert into eventstore.streams (name)
    select distinct u.name from unnest(p_streams) as u(name) order by 1
    on conflict do nothing;
  perform 1 from eventstore.streams t where t.name = any(p_streams) order by t.name for update;

  for g in 1 .. groups loop
    group_end := group_start + p_group_sizes[g] - 1;
    failed_code := null;

    -- Checks first, for every stream of the group: all or nothing.
    for i in group_start .. group_end loop
      select * into s from eventstore.streams t where t.name = p_streams[i];
      if s.tombstoned then
        failed_code := 'ES002';
        failed_detail := json_build_object('stream', p_streams[i])::text;
        exit;
      end if;
      actual := case when s.deleted then -1 else s.revision end;
      expected := p_expected[i];

      -- Idempotent retry: every id already stored, in this stream, consecutively and in order,
      -- where the expected revision says they would go. Asked only when one of the ids is
      -- stored at all: the usual answer, none, is one probe of the id index per event.
      found_count := 0;
      if exists (select 1 from eventstore.events e
                  where e.id = any(p_ids[first_event[i] : first_event[i] + p_counts[i] - 1])) then
        select count(*)::int, bool_and(e.stream = p_streams[i] and e.revision - u.k = e0.revision - 1),
               bool_and(e.type = u.type and e.content_type = u.content_type and e.data = u.data and e.metadata = u.metadata),
               min(e.revision), max(e.revision), min(e.position), min(e.stored_at)
          into found_count, same_place, same_events, min_revision, max_revision, min_position, found_at
          from unnest(
                 p_ids[first_event[i] : first_event[i] + p_counts[i] - 1],
                 p_types[first_event[i] : first_event[i] + p_counts[i] - 1],
                 p_content_types[first_event[i] : first_event[i] + p_counts[i] - 1],
                 p_data[first_event[i] : first_event[i] + p_counts[i] - 1],
                 p_metadata[first_event[i] : first_event[i] + p_counts[i] - 1]
               ) with ordinality as u(id, type, content_type, data, metadata, k)
          join eventstore.events e on e.id = u.id
          left join lateral (
            select x.revision from eventstore.events x where x.id = p_ids[first_event[i]]
          ) e0 on true;
      end if;
      if found_count > 0 then
        if found_count = p_counts[i] and same_place
           and (expected = -2
                or (expected = -1 and min_revision = s.first_revision)
                or (expected = -4 and min_revision > s.first_revision)
                or (expected >= 0 and min_revision = expected + 1)) then
          if not same_events then
            -- The same ids where a retry would find them, with other contents: not a retry.
            failed_code := 'ES006';
            failed_detail := json_build_object(
              'stream', p_streams[i],
              'event_id', (select u.id from unnest(
                              p_ids[first_event[i] : first_event[i] + p_counts[i] - 1],
                              p_types[first_event[i] : first_event[i] + p_counts[i] - 1],
                              p_content_types[first_event[i] : first_event[i] + p_counts[i] - 1],
                              p_data[first_event[i] : first_event[i] + p_counts[i] - 1],
                              p_metadata[first_event[i] : first_event[i] + p_counts[i] - 1]
                            ) as u(id, type, content_type, data, metadata)
                            join eventstore.events e on e.id = u.id
                           where not (e.type = u.type and e.content_type = u.content_type and e.data = u.data and e.metadata = u.metadata)
                           limit 1))::text;
            exit;
          end if;
          is_replay[i] := true;
          replay_revision[i] := max_revision;
          replay_position[i] := min_position;
          replay_at[i] := found_at;
          continue;
        end if;
        failed_code := 'ES003';
        failed_detail := json_build_object(
          'stream', p_streams[i],
          'event_id', (select e.id from eventstore.events e
                         where e.id = any(p_ids[first_event[i] : first_event[i] + p_counts[i] - 1]) limit 1))::text;
        exit;
      end if;

      if not (expected = -2
              or (expected = -1 and actual = -1)
              or (expected = -4 and actual <> -1)
              or (expected >= 0 and actual = expected)) then
        failed_code := 'ES001';
        failed_detail := json_build_object('stream', p_streams[i], 'expected', expected, 'actual', actual)::text;
        exit;
      end if;
    end loop;

    any_failed := any_failed or failed_code is not null;
    for i in group_start .. group_end loop
      stream := p_streams[i];
      error_code := failed_code;
      error_detail := failed_detail;
      if failed_code is not null then
        revision := null; first_position := null; stored_at := null; replayed := false;
      elsif is_replay[i] then
        revision := replay_revision[i];
        first_position := replay_position[i];
        stored_at := replay_at[i];
        replayed := true;
      else
        if head is null then
          select l.position into head from eventstore.log l for update;
          -- Taken under the log lock, so stored_at never decreases along the log.
          ts := date_trunc('milliseconds', clock_timestamp());
        end if;
        select * into s from eventstore.streams t where t.name = p_streams[i];
        insert into eventstore.events (position, stream, revision, id, type, content_type, data, metadata, stored_at)
          select head + u.k, p_streams[i], s.revision + u.k, u.id, u.type, u.content_type, u.data, u.metadata, ts
            from unnest(
              p_ids[first_event[i] : first_event[i] + p_counts[i] - 1],
              p_types[first_event[i] : first_event[i] + p_counts[i] - 1],
              p_content_types[first_event[i] : first_event[i] + p_counts[i] - 1],
              p_data[first_event[i] : first_event[i] + p_counts[i] - 1],
              p_metadata[first_event[i] : first_event[i] + p_counts[i] - 1]
            ) with ordinality as u(id, type, content_type, data, metadata, k);
        update eventstore.streams t
           set revision = s.revision + p_counts[i], position = head + p_counts[i],
               deleted = false, updated_at = ts
         where t.name = p_streams[i];
        revision := s.revision + p_counts[i];
        first_position := head + 1;
        stored_at := ts;
        replayed := false;
        head := head + p_counts[i];
      end if;
      return next;
    end loop;
    group_start := group_end + 1;
  end loop;

  -- Rows this batch created for streams that got no event (their append failed) go again, as a
  -- raised error would have rolled them back: failed appends leave nothing behind.
  if any_failed then
    delete from eventstore.streams t
     where t.name = any(p_streams) and t.revision = -1 and t.position is null
       and not t.tombstoned and not t.deleted;
  end if;

  if head is not null then
    update eventstore.log set position = head;
    -- A wake-up only: listeners read the events from the table.
    perform pg_notify('eventstore_events', head::text);
  end if;
end;
$$;

-- Soft-deletes (p_tombstone false) or tombstones (true) a stream if it satisfies p_expected
-- (encoded as in eventstore.append). Both are idempotent: deleting a deleted stream answers its
-- row again. A soft delete moves the read boundary past the last revision; the events stay in
-- the log, which is immutable. A tombstone of a stream that never existed still reserves its
-- name, so that no later append can use it.
create function eventstore.delete_stream(p_stream text, p_expected bigint, p_tombstone boolean)
returns setof eventstore.streams
language plpgsql as $$
declare
  s eventstore.streams;
  actual bigint;
begin
  if p_tombstone then
    insert into eventstore.streams (name) values (p_stream) on conflict do nothing;
  end if;
  select * into s from eventstore.streams t where t.name = p_stream for update;
  if not found then
    raise exception 'stream % not found', p_stream
      using errcode = 'ES005', detail = json_build_object('stream', p_stream)::text;
  end if;
  if s.tombstoned then
    if p_tombstone then
      return next s;
      return;
    end if;
    raise exception 'stream % is tombstoned', p_stream
      using errcode = 'ES002', detail = json_build_object('stream', p_stream)::text;
  end if;
  actual := case when s.deleted then -1 else s.revision end;
  if not (p_expected = -2
          or (p_expected = -1 and actual = -1)
          or (p_expected = -4 and actual <> -1)
          or (p_expected >= 0 and actual = p_expected)) then
    raise exception 'wrong expected revision'
      using errcode = 'ES001', detail = json_build_object(
        'stream', p_stream, 'expected', p_expected, 'actual', actual)::text;
  end if;
  if s.revision < 0 and not p_tombstone then
    raise exception 'stream % not found', p_stream
      using errcode = 'ES005', detail = json_build_object('stream', p_stream)::text;
  end if;
  return query
    update eventstore.streams t
       set deleted = true, tombstoned = p_tombstone,
           first_revision = s.revision + 1, updated_at = clock_timestamp()
     where t.name = p_stream
    returning t.*;
end;
$$;

-- Events are immutable: the database refuses to change or remove one. Deleting a stream moves
-- its read boundary (eventstore.streams), it does not touch the log.
create function eventstore.refuse_event_change() returns trigger
language plpgsql as $$
begin
  raise exception 'events are append-only: % on eventstore.events refused', tg_op
    using errcode = 'ES004';
end;
$$;

create trigger events_append_only
  before update or delete on eventstore.events
  for each row execute function eventstore.refuse_event_change();

create trigger events_no_truncate
  before truncate on eventstore.events
  for each statement execute function eventstore.refuse_event_change();

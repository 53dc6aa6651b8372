-- The log head: the last position handed out. Every append locks this single row (after its
-- stream rows) to take its positions and keeps the lock until commit, so positions are assigned
-- and committed in the same order: a reader that passed position p can never later see a
-- position below p commit. Appends gathered into one transaction pay for the lock once.
create table eventstore.log (
  singleton boolean primary key default true check (singleton),
  position bigint not null
);

insert into eventstore.log (singleton, position) values (true, 0);

-- Where each durable (named) subscription has got to: the global position its consumer has
-- processed, committed by the consumer.
create table eventstore.subscription_checkpoints (
  name text collate "C" primary key,
  position bigint not null check (position >= 0),
  committed_at timestamptz not null default clock_timestamp()
);

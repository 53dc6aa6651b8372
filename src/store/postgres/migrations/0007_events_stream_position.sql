-- Stream subscriptions page through one stream by global position (after a position, in log
-- order); the (stream, revision) key cannot serve that order.
create index events_stream_position on eventstore.events (stream, position);

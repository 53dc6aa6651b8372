-- The least a server needs to run: read and write the store's tables, and nothing more. No
-- CREATE on the database or the schema, no ALTER, no DROP, no TRUNCATE, no DELETE of events:
-- migrations are the migration role's (the schema's owner), run with `eventstore migrate`.
--
--   createuser --pwprompt eventstore_runtime        (or CREATE ROLE ... LOGIN PASSWORD ...)
--   psql -d eventstore -v role=eventstore_runtime -f deploy/runtime-grants.sql
--
-- Run it as the migration role after each `eventstore migrate` (it is idempotent): a migration
-- that adds a table needs its grant. docs/operations.md says more; test/e2e/runtime-role.test.ts
-- runs a server with only these rights.

grant usage on schema eventstore to :"role";
grant select on eventstore.schema_migrations to :"role";
-- Events are appended, never changed (a trigger refuses UPDATE, DELETE and TRUNCATE too).
grant select, insert on eventstore.events to :"role";
grant select, insert, update, delete on eventstore.streams to :"role";
grant select, update on eventstore.log to :"role";
grant select, insert, update on eventstore.subscription_checkpoints to :"role";
grant select, insert, update, delete on eventstore.projections to :"role";
-- The store's functions (append_batch, delete_stream and the others) run with the caller's rights.
grant execute on all functions in schema eventstore to :"role";

#!/bin/sh
# Runs once, when the PostgreSQL volume is new: the migration role (owner of the schema it
# creates) and the runtime role (given only deploy/runtime-grants.sql's rights after each
# migration). Their passwords come from the postgres service's environment.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres --dbname eventstore \
  -v owner_password="$EVENTSTORE_OWNER_PASSWORD" -v runtime_password="$EVENTSTORE_RUNTIME_PASSWORD" <<'SQL'
create role eventstore_owner login password :'owner_password';
create role eventstore_runtime login password :'runtime_password';
grant create on database eventstore to eventstore_owner;
SQL

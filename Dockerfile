# syntax=docker/dockerfile:1
#
# The event store server. Without DATABASE_URL it serves an embedded database (PGlite) kept in
# the /data volume; with DATABASE_URL (docker run -e DATABASE_URL=postgres://...) it serves that
# PostgreSQL, the production mode. Every setting is an environment variable: see --help.
#
#   docker build -t eventstore .
#   docker run -p 50051:50051 -v eventstore-data:/data \
#     -v ./auth.yaml:/etc/eventstore/auth.yaml:ro -e AUTH_FILE=/etc/eventstore/auth.yaml eventstore
#
# A container must listen beyond its loopback to be reached, so the image sets HOST=0.0.0.0, and
# it chooses safety: it does not start until it is given an auth file (AUTH_FILE, see the
# README's Security section) or told INSECURE=true (anyone who reaches the port may do
# anything: for a trial on your own machine only).
#
# npm install, not npm ci: the lockfile written here lacks other platforms' optional packages,
# which npm ci calls out of sync (see docs/development.md, "Why npm install and not npm ci").
# npm install follows the lockfile as it is. test/e2e/dockerfile.test.ts repeats the runtime
# stage outside Docker.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
# dist/ includes dist/src/store/postgres/migrations, copied there by the build.
COPY --from=build /app/dist ./dist
RUN mkdir -p /data && chown node:node /data
USER node
ENV PORT=50051 \
    HOST=0.0.0.0 \
    INSECURE=false \
    DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 50051
# A larger young generation: streaming reads and catch-up allocate per event, and with the
# default (16 MiB semi-spaces) the collector took a third of the server's time (docs/benchmarks.md).
CMD ["node", "--max-semi-space-size=32", "dist/src/server/main.js", "serve"]

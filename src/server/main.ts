#!/usr/bin/env node
import { createHash, randomBytes } from "node:crypto";
import { isCliCommand, runCli } from "../cli/run-cli";
import { openStore } from "../store";
import { ConfigError, loadConfig, usage } from "./config";
import { createLogger } from "./logger";
import { startServer, StartCancelled } from "./start-server";

async function main(): Promise<number> {
  if (isCliCommand(process.argv[2])) return runCli(process.argv.slice(2), process.env);
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`eventstore: ${e.message}\n\n${usage()}`);
    return 2;
  }
  if (config.command === "help") {
    process.stdout.write(usage());
    return 0;
  }
  if (config.command === "token") {
    process.stdout.write(newToken());
    return 0;
  }
  const log = createLogger(config.logLevel);
  if (config.command === "migrate") {
    const store = await openStore({ location: config.location, limits: config.limits });
    await store.close();
    log.info("migrated");
    return 0;
  }

  // Signals are handled from the start: a stop while waiting for the database is a clean exit.
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) process.exit(signal === "SIGINT" ? 130 : 143);
    log.info("shutting down", { signal });
    stop.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // SIGHUP is the operator's "read your files again": the auth file and the TLS certificates.
  // Handled from the start too: its default would end the process, even before it is ready.
  let reload: (() => void) | undefined;
  process.on("SIGHUP", () => {
    log.info("reloading", { signal: "SIGHUP" });
    reload?.();
  });

  let server;
  try {
    server = await startServer(config, log, stop.signal);
  } catch (e) {
    if (e instanceof StartCancelled) {
      log.info("stopped");
      return 0;
    }
    throw e;
  }
  reload = () => server.reload();
  if (!stop.signal.aborted) await new Promise((resolve) => stop.signal.addEventListener("abort", resolve, { once: true }));
  await server.stop();
  return 0;
}

/** A new API key: 32 random bytes, given to the client; the file keeps only its SHA-256. */
function newToken(): string {
  const token = randomBytes(32).toString("base64url");
  const sha256 = createHash("sha256").update(token).digest("hex");
  return [
    `token (give it to the client, as authorization: Bearer <token>; it is not shown again):`,
    `  ${token}`,
    `for the auth file's tokens list:`,
    `  - principal: <name>`,
    `    sha256: ${sha256}`,
    "",
  ].join("\n");
}

/** The error and its causes: stderr is the operator's, so it gets the whole story. */
function describe(e: unknown): string {
  const parts: string[] = [];
  for (let cause: unknown = e, depth = 0; cause !== undefined && depth < 5; depth++) {
    parts.push(cause instanceof Error ? cause.message : String(cause));
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return parts.join(": caused by: ");
}

/** What the operator can do about a failure to start, where the error says. */
function hint(e: unknown): string {
  for (let cause: unknown = e, depth = 0; cause !== undefined && depth < 5; depth++) {
    // invalid_catalog_name: the URL names a database the PostgreSQL server does not have.
    if ((cause as { code?: string }).code === "3D000") {
      const name = /database "(.*)" does not exist/.exec((cause as Error).message)?.[1] ?? "<name>";
      return `\nthe database of DATABASE_URL does not exist: create it (createdb ${name}, or CREATE DATABASE "${name}"), then start again; the server makes its tables itself\n`;
    }
    // insufficient_privilege: a runtime role, and migrations pending, which only the schema's owner may run.
    if ((cause as { code?: string }).code === "42501") {
      return "\nthe role of DATABASE_URL may not create or change the schema, and migrations are pending: run `eventstore migrate` as the schema's owner (the migration role), then start again (docs/operations.md)\n";
    }
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return "";
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`eventstore: ${describe(e)}\n${hint(e)}`);
    process.exit(1);
  },
);

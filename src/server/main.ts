#!/usr/bin/env node
import { openStore } from "../store";
import { ConfigError, loadConfig, usage } from "./config";
import { createLogger } from "./logger";
import { startServer } from "./start-server";

async function main(): Promise<number> {
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
  const log = createLogger(config.logLevel);
  if (config.command === "migrate") {
    const store = await openStore({ location: config.location, limits: config.limits });
    await store.close();
    log.info("migrated");
    return 0;
  }
  const server = await startServer(config, log);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      log.info("shutting down", { signal });
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(143));
      void server.stop().then(resolve);
    };
    process.once("SIGINT", () => onSignal("SIGINT"));
    process.once("SIGTERM", () => onSignal("SIGTERM"));
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`eventstore: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);

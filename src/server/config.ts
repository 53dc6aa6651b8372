import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { DEFAULT_LIMITS, type Limits } from "../domain";
import type { StoreLocation } from "../store";
import type { LogLevel } from "./logger";

export interface Config {
  command: "serve" | "migrate" | "help";
  host: string;
  port: number;
  location: StoreLocation;
  tls?: { cert: Buffer; key: Buffer };
  limits: Limits;
  logLevel: LogLevel;
  /** How long in-flight calls get to finish on shutdown. */
  shutdownGraceMs: number;
  subscriptions: {
    heartbeatMs: number;
    checkpointIntervalMs: number;
    pollIntervalMs: number;
    bufferEvents: number;
    bufferBytes: number;
    listenProbeIntervalMs: number;
  };
  /** Interval of HTTP/2 pings that find dead peers; 0: none. */
  pingIntervalMs: number;
  /** Compress response messages of at least this many bytes for clients that accept it; 0: never. */
  compressMinBytes: number;
}

/** Every setting: its flag, its environment variable, its default, and what it means. */
const SETTINGS = {
  host: { env: "HOST", default: "0.0.0.0", help: "address to listen on" },
  port: { env: "PORT", default: "50051", help: "port for gRPC, gRPC-Web and Connect" },
  "database-url": { env: "DATABASE_URL", default: "", help: "PostgreSQL URL; empty: the embedded database" },
  "data-dir": { env: "DATA_DIR", default: "./data", help: "embedded database directory, or 'memory'" },
  "db-pool-size": { env: "DB_POOL_SIZE", default: "10", help: "PostgreSQL connections per server" },
  "tls-cert": { env: "TLS_CERT", default: "", help: "PEM certificate file: serve TLS (HTTP/2 and HTTP/1.1)" },
  "tls-key": { env: "TLS_KEY", default: "", help: "PEM private key file for --tls-cert" },
  "log-level": { env: "LOG_LEVEL", default: "info", help: "debug, info, warn, error or silent" },
  "shutdown-grace-ms": { env: "SHUTDOWN_GRACE_MS", default: "10000", help: "time for in-flight calls on shutdown" },
  "max-append-events": { env: "MAX_APPEND_EVENTS", default: String(DEFAULT_LIMITS.maxAppendEvents), help: "most events in one append request" },
  "max-event-bytes": { env: "MAX_EVENT_BYTES", default: String(DEFAULT_LIMITS.maxEventBytes), help: "most bytes of data + metadata in one event" },
  "max-append-bytes": { env: "MAX_APPEND_BYTES", default: String(DEFAULT_LIMITS.maxAppendBytes), help: "most bytes of data + metadata in one append request" },
  "max-append-streams": { env: "MAX_APPEND_STREAMS", default: String(DEFAULT_LIMITS.maxAppendStreams), help: "most streams in one multi-stream append" },
  "max-event-type-length": { env: "MAX_EVENT_TYPE_LENGTH", default: String(DEFAULT_LIMITS.maxEventTypeLength), help: "most characters in an event type" },
  "heartbeat-interval-ms": { env: "HEARTBEAT_INTERVAL_MS", default: "10000", help: "subscription heartbeat while idle (per-call override allowed)" },
  "checkpoint-interval-ms": { env: "CHECKPOINT_INTERVAL_MS", default: "1000", help: "least time between subscription checkpoints when no event is sent" },
  "poll-interval-ms": { env: "POLL_INTERVAL_MS", default: "1000", help: "slow poll of the log that covers lost notifications" },
  "subscriber-buffer-events": { env: "SUBSCRIBER_BUFFER_EVENTS", default: "10000", help: "live events buffered per subscriber before it falls behind" },
  "subscriber-buffer-bytes": { env: "SUBSCRIBER_BUFFER_BYTES", default: String(16 * 1024 * 1024), help: "live event bytes buffered per subscriber before it falls behind" },
  "listen-probe-interval-ms": { env: "LISTEN_PROBE_INTERVAL_MS", default: "10000", help: "how often the LISTEN connection is proven alive" },
  "compress-min-bytes": { env: "COMPRESS_MIN_BYTES", default: "0", help: "gzip responses of at least this many bytes for clients that accept it (0: never)" },
  "ping-interval-ms": { env: "PING_INTERVAL_MS", default: "30000", help: "HTTP/2 ping interval to find dead peers (0: off)" },
  "max-filter-terms": { env: "MAX_FILTER_TERMS", default: String(DEFAULT_LIMITS.maxFilterTerms), help: "most types, matchers and values in one filter" },
  "max-projection-state-bytes": { env: "MAX_PROJECTION_STATE_BYTES", default: String(DEFAULT_LIMITS.maxProjectionStateBytes), help: "most bytes in a projection's state" },
  "max-projection-streams": { env: "MAX_PROJECTION_STREAMS", default: String(DEFAULT_LIMITS.maxProjectionStreams), help: "most source streams a projection record tracks" },
} as const;

type Setting = keyof typeof SETTINGS;

export class ConfigError extends Error {}

export function usage(): string {
  const lines = Object.entries(SETTINGS).map(
    ([flag, s]) => `  --${flag.padEnd(22)} ${s.env.padEnd(22)} ${s.help}${s.default ? ` (default ${s.default})` : ""}`,
  );
  return [
    "Usage: eventstore [serve|migrate] [options]",
    "",
    "Commands:",
    "  serve      serve gRPC, gRPC-Web and Connect (the default); migrates the database first",
    "  migrate    apply pending database migrations and exit",
    "",
    "Options (flag, environment variable; a flag wins over its variable):",
    ...lines,
    "  --help, -h                                        show this help",
    "",
  ].join("\n");
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  const options = Object.fromEntries(Object.keys(SETTINGS).map((k) => [k, { type: "string" as const }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const [command = "serve", ...rest] = parsed.positionals;
  if (parsed.values.help || command === "help") return { ...defaults(), command: "help" };
  if (command !== "serve" && command !== "migrate") throw new ConfigError(`unknown command: ${command}`);
  if (rest.length > 0) throw new ConfigError(`unexpected arguments: ${rest.join(" ")}`);

  const values = parsed.values as Record<string, string | boolean | undefined>;
  const get = (name: Setting): string => (values[name] as string | undefined) ?? env[SETTINGS[name].env] ?? SETTINGS[name].default;
  const int = (name: Setting, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const text = get(name);
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`--${name} (${SETTINGS[name].env}) must be an integer in ${min}..${max}, got ${JSON.stringify(text)}`);
    return n;
  };
  const databaseUrl = get("database-url");
  const certFile = get("tls-cert");
  const keyFile = get("tls-key");
  if (Boolean(certFile) !== Boolean(keyFile)) throw new ConfigError("--tls-cert and --tls-key go together");
  const logLevel = get("log-level");
  if (!["debug", "info", "warn", "error", "silent"].includes(logLevel)) throw new ConfigError(`unknown log level ${logLevel}`);
  return {
    command,
    host: get("host"),
    port: int("port", 0, 65535),
    location: databaseUrl
      ? { kind: "postgres", url: databaseUrl, poolSize: int("db-pool-size", 1, 1000) }
      : { kind: "embedded", dataDir: get("data-dir") },
    tls: certFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : undefined,
    limits: {
      maxAppendEvents: int("max-append-events", 1),
      maxEventBytes: int("max-event-bytes", 1),
      maxAppendBytes: int("max-append-bytes", 1),
      maxAppendStreams: int("max-append-streams", 1),
      maxEventTypeLength: int("max-event-type-length", 1),
      maxFilterTerms: int("max-filter-terms", 1),
      maxProjectionStateBytes: int("max-projection-state-bytes", 1),
      maxProjectionStreams: int("max-projection-streams", 1),
    },
    logLevel: logLevel as LogLevel,
    shutdownGraceMs: int("shutdown-grace-ms", 0),
    subscriptions: {
      heartbeatMs: int("heartbeat-interval-ms", 100, 3_600_000),
      checkpointIntervalMs: int("checkpoint-interval-ms", 10),
      pollIntervalMs: int("poll-interval-ms", 10),
      bufferEvents: int("subscriber-buffer-events", 1),
      bufferBytes: int("subscriber-buffer-bytes", 1),
      listenProbeIntervalMs: int("listen-probe-interval-ms", 100),
    },
    pingIntervalMs: int("ping-interval-ms", 0),
    compressMinBytes: int("compress-min-bytes", 0),
  };
}

function defaults(): Config {
  return loadConfig([], {});
}

import { parseArgs } from "node:util";
import { DEFAULT_LIMITS, type Limits } from "../domain";
import { DEFAULT_MAX_CONCURRENT_SCANS, DEFAULT_SCAN_WINDOW, DEFAULT_STATEMENT_TIMEOUT_MS, type StoreLocation } from "../store";
import type { LogLevel } from "./logger";
import { leastRequestBytes, MAX_MESSAGE_BYTES } from "./request-size-limits";

export interface Config {
  command: "serve" | "migrate" | "token" | "help";
  host: string;
  port: number;
  location: StoreLocation;
  /** The longest one SQL statement may run, in milliseconds; 0: no limit. */
  statementTimeoutMs: number;
  /** The most log positions one filtered read statement scans. */
  scanWindow: number;
  /** Filtered log scans in the database at once, all callers together. */
  maxConcurrentScans: number;
  /** PEM files, read at start and again when they change: serve TLS. */
  tls?: TlsFiles;
  /** The security configuration file (tokens, JWT, rules); unset: no authentication. */
  authFile?: string;
  /** Serve anonymous clients (no authentication) on an address other than loopback. */
  insecure: boolean;
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
  /** What one client may hold of the server's connections, streams and time. */
  connections: ConnectionLimits;
  /** Most open subscriptions on this server, and of one principal (by name; "anonymous" is one). */
  maxSubscriptions: number;
  maxSubscriptionsPerPrincipal: number;
  /** Health answers NOT_SERVING while the event loop runs later than this; 0: never. */
  maxEventLoopLagMs: number;
  metrics: MetricsSettings;
  /** A unary call, or a store operation in the database, slower than this is logged at warn; 0: never. */
  slowCallMs: number;
  slowQueryMs: number;
}

export interface MetricsSettings {
  /** Where Prometheus text is served at GET /metrics; no port: not served. */
  host: string;
  port?: number;
  /** Most durable subscriptions, and most projections, whose lag a scrape reports. */
  maxConsumers: number;
}

export interface ConnectionLimits {
  /** Open connections; one more is closed at once. */
  maxConnections: number;
  /** Concurrent streams (calls) on one HTTP/2 connection; a client queues beyond it. */
  maxConcurrentStreams: number;
  /** Calls a client may cancel on one HTTP/2 connection: at once, and a second after that. */
  maxStreamResets: number;
  streamResetsPerSecond: number;
  /** HTTP/1.1: time for a request's headers, and for the whole request; idle time between requests. */
  http1HeadersTimeoutMs: number;
  http1RequestTimeoutMs: number;
  http1KeepAliveTimeoutMs: number;
  /** Time for the request message of a call that sends one (unary, server streaming) to arrive; 0: none. */
  requestBodyTimeoutMs: number;
  /** Request bytes the server holds at once, all calls together, while their requests arrive. */
  maxBufferedRequestBytes: number;
  /** Bytes of one request message to any method but the appends (whose limit follows maxAppendBytes). */
  maxRequestBytes: number;
}

export interface TlsFiles {
  cert: string;
  key: string;
  /** Client certificates are requested and verified against this CA: mTLS. */
  clientCa?: string;
}

/** Every setting: its flag, its environment variable, its default, and what it means. */
const SETTINGS = {
  host: { env: "HOST", default: "", help: "address to listen on (default 127.0.0.1 without authentication, else 0.0.0.0)" },
  port: { env: "PORT", default: "50051", help: "port for gRPC, gRPC-Web and Connect" },
  "database-url": { env: "DATABASE_URL", default: "", help: "PostgreSQL URL; empty: the embedded database" },
  "data-dir": { env: "DATA_DIR", default: "./data", help: "embedded database directory, or 'memory'" },
  "db-pool-size": { env: "DB_POOL_SIZE", default: "10", help: "PostgreSQL connections per server (besides LISTEN): a quarter for writes, the rest for reads, at least one each" },
  "statement-timeout-ms": { env: "STATEMENT_TIMEOUT_MS", default: String(DEFAULT_STATEMENT_TIMEOUT_MS), help: "longest one SQL statement may run; past it the call fails with RESOURCE_EXHAUSTED (0: no limit; migrations are exempt)" },
  "max-concurrent-scans": { env: "MAX_CONCURRENT_SCANS", default: String(DEFAULT_MAX_CONCURRENT_SCANS), help: "most filtered log scans (ReadAll, subscription catch-up) in the database at once, all callers together; the rest wait their turn" },
  "scan-window": { env: "SCAN_WINDOW", default: String(DEFAULT_SCAN_WINDOW), help: "most log positions one filtered read statement scans; sparse filters read the log this many positions at a time" },
  "tls-cert": { env: "TLS_CERT", default: "", help: "PEM certificate file: serve TLS (HTTP/2 and HTTP/1.1)" },
  "tls-key": { env: "TLS_KEY", default: "", help: "PEM private key file for --tls-cert" },
  "tls-client-ca": { env: "TLS_CLIENT_CA", default: "", help: "PEM CA file: request and verify client certificates (mTLS)" },
  "auth-file": { env: "AUTH_FILE", default: "", help: "security file (YAML or JSON): tokens, JWT, rules; reloaded on change and SIGHUP" },
  insecure: { env: "INSECURE", default: "false", help: "serve anonymous clients on a non-loopback address (true/false)" },
  "log-level": { env: "LOG_LEVEL", default: "info", help: "debug, info, warn, error or silent" },
  "shutdown-grace-ms": { env: "SHUTDOWN_GRACE_MS", default: "10000", help: "time for in-flight calls on shutdown" },
  "max-append-events": { env: "MAX_APPEND_EVENTS", default: String(DEFAULT_LIMITS.maxAppendEvents), help: "most events in one append request" },
  "max-event-bytes": { env: "MAX_EVENT_BYTES", default: String(DEFAULT_LIMITS.maxEventBytes), help: "most bytes in one event: data, metadata as JSON, type, content type, stream, id" },
  "max-append-bytes": { env: "MAX_APPEND_BYTES", default: String(DEFAULT_LIMITS.maxAppendBytes), help: "most bytes in one append request, its events counted as in --max-event-bytes" },
  "max-append-streams": { env: "MAX_APPEND_STREAMS", default: String(DEFAULT_LIMITS.maxAppendStreams), help: "most streams in one multi-stream append" },
  "max-event-type-length": { env: "MAX_EVENT_TYPE_LENGTH", default: String(DEFAULT_LIMITS.maxEventTypeLength), help: "most characters in an event type" },
  "max-content-type-length": { env: "MAX_CONTENT_TYPE_LENGTH", default: String(DEFAULT_LIMITS.maxContentTypeLength), help: "most bytes in an event's content type" },
  "max-metadata-depth": { env: "MAX_METADATA_DEPTH", default: String(DEFAULT_LIMITS.maxMetadataDepth), help: "most nesting levels in an event's metadata or json payload ({} is 1)" },
  "max-metadata-values": { env: "MAX_METADATA_VALUES", default: String(DEFAULT_LIMITS.maxMetadataValues), help: "most values (members and list elements) in one event's metadata" },
  "max-append-json-values": { env: "MAX_APPEND_JSON_VALUES", default: String(DEFAULT_LIMITS.maxAppendJsonValues), help: "most metadata and json payload values in one append request" },
  "heartbeat-interval-ms": { env: "HEARTBEAT_INTERVAL_MS", default: "10000", help: "subscription heartbeat while idle (per-call override allowed)" },
  "checkpoint-interval-ms": { env: "CHECKPOINT_INTERVAL_MS", default: "1000", help: "least time between subscription checkpoints when no event is sent" },
  "poll-interval-ms": { env: "POLL_INTERVAL_MS", default: "1000", help: "slow poll of the log that covers lost notifications" },
  "subscriber-buffer-events": { env: "SUBSCRIBER_BUFFER_EVENTS", default: "10000", help: "live events buffered per subscriber before it falls behind" },
  "subscriber-buffer-bytes": { env: "SUBSCRIBER_BUFFER_BYTES", default: String(16 * 1024 * 1024), help: "live event bytes buffered per subscriber before it falls behind" },
  "listen-probe-interval-ms": { env: "LISTEN_PROBE_INTERVAL_MS", default: "10000", help: "how often the LISTEN connection is proven alive" },
  "compress-min-bytes": { env: "COMPRESS_MIN_BYTES", default: "0", help: "gzip responses of at least this many bytes for clients that accept it (0: never)" },
  "ping-interval-ms": { env: "PING_INTERVAL_MS", default: "30000", help: "HTTP/2 ping interval to find dead peers (0: off)" },
  "max-filter-terms": { env: "MAX_FILTER_TERMS", default: String(DEFAULT_LIMITS.maxFilterTerms), help: "most types, matchers and values in one filter" },
  "max-filter-bytes": { env: "MAX_FILTER_BYTES", default: String(DEFAULT_LIMITS.maxFilterBytes), help: "most UTF-8 bytes of types, prefixes, keys and JSON values in one filter" },
  "max-regex-length": { env: "MAX_REGEX_LENGTH", default: String(DEFAULT_LIMITS.maxRegexLength), help: "most characters in one filter regular expression" },
  "max-regex-instructions": { env: "MAX_REGEX_INSTRUCTIONS", default: String(DEFAULT_LIMITS.maxRegexInstructions), help: "most RE2 instructions the regular expressions of one filter compile to, together" },
  "max-projection-state-bytes": { env: "MAX_PROJECTION_STATE_BYTES", default: String(DEFAULT_LIMITS.maxProjectionStateBytes), help: "most bytes in a projection's state" },
  "max-projection-streams": { env: "MAX_PROJECTION_STREAMS", default: String(DEFAULT_LIMITS.maxProjectionStreams), help: "most source streams a projection record tracks" },
  "max-connections": { env: "MAX_CONNECTIONS", default: "4096", help: "most open connections; more are closed at once (gRPC clients see UNAVAILABLE)" },
  "max-stream-resets": { env: "MAX_STREAM_RESETS", default: "1000", help: "most calls a client may cancel at once on one HTTP/2 connection; past it (and --stream-resets-per-second after it) the connection is closed with GOAWAY" },
  "stream-resets-per-second": { env: "STREAM_RESETS_PER_SECOND", default: "33", help: "calls a second a client may cancel on one HTTP/2 connection once --max-stream-resets are spent" },
  "max-concurrent-streams": { env: "MAX_CONCURRENT_STREAMS", default: "100", help: "most concurrent calls on one HTTP/2 connection; clients queue beyond it" },
  "http1-headers-timeout-ms": { env: "HTTP1_HEADERS_TIMEOUT_MS", default: "10000", help: "most time for an HTTP/1.1 request's headers (0: none)" },
  "http1-request-timeout-ms": { env: "HTTP1_REQUEST_TIMEOUT_MS", default: "30000", help: "most time for a whole HTTP/1.1 request, body included (0: none)" },
  "http1-keep-alive-timeout-ms": { env: "HTTP1_KEEP_ALIVE_TIMEOUT_MS", default: "5000", help: "how long an idle HTTP/1.1 connection stays open" },
  "request-body-timeout-ms": { env: "REQUEST_BODY_TIMEOUT_MS", default: "10000", help: "most time for a unary or server-streaming call's request to arrive, else RESOURCE_EXHAUSTED (0: none)" },
  // Under 500 stalled calls, RSS measured about 70 MiB + 2.1 x this (chunks let go are freed only at V8's next
  // collection): 128 MiB keeps it near 340 MiB, under 512; the largest request (~23 MiB by default) fits 5 times.
  "max-buffered-request-bytes": { env: "MAX_BUFFERED_REQUEST_BYTES", default: String(128 * 1024 * 1024), help: "most request bytes held at once, all calls together, while their requests arrive; a call past it is refused with RESOURCE_EXHAUSTED" },
  "max-request-bytes": { env: "MAX_REQUEST_BYTES", default: String(4 * 1024 * 1024), help: "most bytes in one request message other than an append (appends: --max-append-bytes, with room for JSON); larger is refused from its length with RESOURCE_EXHAUSTED" },
  "max-subscriptions": { env: "MAX_SUBSCRIPTIONS", default: "2000", help: "most open subscriptions on this server" },
  "max-subscriptions-per-principal": { env: "MAX_SUBSCRIPTIONS_PER_PRINCIPAL", default: "1000", help: "most open subscriptions of one principal (anonymous callers share one)" },
  "slow-call-ms": { env: "SLOW_CALL_MS", default: "1000", help: "log a unary call that takes longer at warn, not info (0: never)" },
  "slow-query-ms": { env: "SLOW_QUERY_MS", default: "1000", help: "log a store operation that takes longer in the database at warn (0: never)" },
  "metrics-port": { env: "METRICS_PORT", default: "", help: "serve Prometheus metrics at GET /metrics on this port (empty: off; 0: any free port)" },
  "metrics-host": { env: "METRICS_HOST", default: "127.0.0.1", help: "address of the metrics port (no authentication there: keep it private)" },
  "metrics-max-consumers": { env: "METRICS_MAX_CONSUMERS", default: "1000", help: "most durable subscriptions, and most projections, whose lag one scrape reports (by name)" },
  "max-event-loop-lag-ms": { env: "MAX_EVENT_LOOP_LAG_MS", default: "1000", help: "health answers NOT_SERVING while the event loop runs this late (0: never)" },
} as const;

type Setting = keyof typeof SETTINGS;

/** The environment variables the server reads its settings from. */
export const SETTING_VARIABLES: readonly string[] = Object.values(SETTINGS).map((s) => s.env);

/** Every setting as --help lists it (the README's configuration table is held to this). */
export function settingsList(): { flag: string; env: string; default: string; help: string }[] {
  return Object.entries(SETTINGS).map(([flag, s]) => ({ flag: `--${flag}`, env: s.env, default: s.default, help: s.help }));
}

const SWITCHES: ReadonlySet<string> = new Set<Setting>(["insecure"]);

export class ConfigError extends Error {}

export function usage(): string {
  const flagWidth = Math.max(...Object.keys(SETTINGS).map((f) => f.length)) + 2;
  const envWidth = Math.max(...Object.values(SETTINGS).map((s) => s.env.length));
  const lines = Object.entries(SETTINGS).map(
    ([flag, s]) => `  ${`--${flag}`.padEnd(flagWidth)} ${s.env.padEnd(envWidth)} ${s.help}${s.default ? ` (default ${s.default})` : ""}`,
  );
  return [
    "Usage: eventstore [serve|migrate|token] [options]",
    "",
    "Commands:",
    "  serve      serve gRPC, gRPC-Web and Connect (the default); migrates the database first",
    "  migrate    apply pending database migrations and exit",
    "  token      make a new API key and print it with the SHA-256 line for the auth file",
    "",
    "Admin commands (talk to a running server; --help on each):",
    "  streams    ls, info, delete, tombstone",
    "  projections ls, info, stop, reset, delete",
    "  append     append one event",
    "  tail       a live view of a stream, a category or the log",
    "  export     the log as NDJSON",
    "  import     an export, into another store",
    "",
    "Options (flag, environment variable; a flag wins over its variable):",
    ...lines,
    `  ${"--help, -h".padEnd(flagWidth + envWidth + 1)} show this help`,
    "",
  ].join("\n");
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv): Config {
  // Switches take no value on the command line (`--insecure`); their variables say true or false.
  const options = Object.fromEntries(Object.keys(SETTINGS).map((k) => [k, { type: SWITCHES.has(k) ? ("boolean" as const) : ("string" as const) }]));
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, allowPositionals: true });
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const [command = "serve", ...rest] = parsed.positionals;
  if (parsed.values.help || command === "help") return { ...defaults(), command: "help" };
  if (command === "token") return { ...defaults(), command: "token" };
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
  const bool = (name: Setting): boolean => {
    const text = String(values[name] ?? env[SETTINGS[name].env] ?? SETTINGS[name].default).toLowerCase();
    if (["true", "1", "yes"].includes(text)) return true;
    if (["false", "0", "no", ""].includes(text)) return false;
    throw new ConfigError(`--${name} (${SETTINGS[name].env}) must be true or false, got ${JSON.stringify(text)}`);
  };
  const databaseUrl = get("database-url");
  const certFile = get("tls-cert");
  const keyFile = get("tls-key");
  const clientCa = get("tls-client-ca");
  if (Boolean(certFile) !== Boolean(keyFile)) throw new ConfigError("--tls-cert and --tls-key go together");
  if (clientCa && !certFile) throw new ConfigError("--tls-client-ca needs --tls-cert and --tls-key: client certificates travel over TLS");
  const authFile = get("auth-file") || undefined;
  if (clientCa && !authFile) throw new ConfigError("--tls-client-ca needs --auth-file: its rules say what certificate holders may do");
  const insecure = bool("insecure");
  const host = get("host") || (authFile ? "0.0.0.0" : "127.0.0.1");
  if (!authFile && !insecure && !isLoopback(host)) {
    throw new ConfigError(
      `--host ${host} would serve anonymous clients beyond this machine: give --auth-file (AUTH_FILE), ` +
        "or pass --insecure (INSECURE=true) to let anyone on the network do anything",
    );
  }
  const logLevel = get("log-level");
  if (!["debug", "info", "warn", "error", "silent"].includes(logLevel)) throw new ConfigError(`unknown log level ${logLevel}`);
  const limits: Limits = {
    maxAppendEvents: int("max-append-events", 1),
    maxEventBytes: int("max-event-bytes", 1),
    maxAppendBytes: int("max-append-bytes", 1),
    maxAppendStreams: int("max-append-streams", 1),
    maxEventTypeLength: int("max-event-type-length", 1),
    maxContentTypeLength: int("max-content-type-length", 1),
    // Past 48, what was stored nests deeper than protobuf's usual recursion limit of 100 lets readers read.
    maxMetadataDepth: int("max-metadata-depth", 1, 48),
    maxMetadataValues: int("max-metadata-values", 1),
    maxAppendJsonValues: int("max-append-json-values", 1),
    maxFilterTerms: int("max-filter-terms", 1),
    maxFilterBytes: int("max-filter-bytes", 1),
    maxRegexLength: int("max-regex-length", 1),
    maxRegexInstructions: int("max-regex-instructions", 8),
    maxProjectionStateBytes: int("max-projection-state-bytes", 1),
    maxProjectionStreams: int("max-projection-streams", 1),
  };
  return {
    command,
    host,
    port: int("port", 0, 65535),
    location: databaseUrl
      ? { kind: "postgres", url: databaseUrl, poolSize: int("db-pool-size", 2, 1000) }
      : { kind: "embedded", dataDir: get("data-dir") },
    statementTimeoutMs: int("statement-timeout-ms", 0, 2_147_483_647),
    // Below 1,000 (a page's most rows) a dense page would take more than one statement.
    scanWindow: int("scan-window", 1000, 2 ** 40),
    maxConcurrentScans: int("max-concurrent-scans", 1),
    tls: certFile ? { cert: certFile, key: keyFile, clientCa: clientCa || undefined } : undefined,
    authFile,
    insecure,
    limits,
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
    connections: connectionLimits(int, limits),
    maxSubscriptions: int("max-subscriptions", 1),
    maxSubscriptionsPerPrincipal: int("max-subscriptions-per-principal", 1),
    maxEventLoopLagMs: int("max-event-loop-lag-ms", 0),
    slowCallMs: int("slow-call-ms", 0),
    slowQueryMs: int("slow-query-ms", 0),
    metrics: {
      host: get("metrics-host"),
      port: get("metrics-port") === "" ? undefined : int("metrics-port", 0, 65535),
      maxConsumers: int("metrics-max-consumers", 1, 100_000),
    },
  };
}

function connectionLimits(int: (name: Setting, min: number, max?: number) => number, events: Limits): ConnectionLimits {
  const limits = {
    maxConnections: int("max-connections", 1),
    // RFC 9113 advises no fewer than 100; SETTINGS values are 32-bit.
    maxConcurrentStreams: int("max-concurrent-streams", 1, 2 ** 32 - 1),
    maxStreamResets: int("max-stream-resets", 1),
    streamResetsPerSecond: int("stream-resets-per-second", 0),
    http1HeadersTimeoutMs: int("http1-headers-timeout-ms", 0),
    http1RequestTimeoutMs: int("http1-request-timeout-ms", 0),
    http1KeepAliveTimeoutMs: int("http1-keep-alive-timeout-ms", 0),
    requestBodyTimeoutMs: int("request-body-timeout-ms", 0),
    maxBufferedRequestBytes: int("max-buffered-request-bytes", 1),
    maxRequestBytes: int("max-request-bytes", 1, MAX_MESSAGE_BYTES),
  };
  const least = leastRequestBytes(events);
  if (limits.maxRequestBytes < least) {
    throw new ConfigError(
      `--max-request-bytes must hold the largest projection persist and filter in Connect JSON: at least ${least} with ` +
        `--max-projection-state-bytes ${events.maxProjectionStateBytes}, --max-projection-streams ${events.maxProjectionStreams}, ` +
        `--max-filter-bytes ${events.maxFilterBytes} and --max-filter-terms ${events.maxFilterTerms}`,
    );
  }
  // Node refuses headers that may take longer than the whole request.
  if (limits.http1RequestTimeoutMs > 0 && limits.http1HeadersTimeoutMs > limits.http1RequestTimeoutMs) {
    throw new ConfigError("--http1-headers-timeout-ms must not exceed --http1-request-timeout-ms");
  }
  return limits;
}

/** Whether an address reaches this machine only. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function defaults(): Config {
  return loadConfig([], {});
}

import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { APPEND_USAGE, appendCommand } from "./append-command";
import { CliError, connectTo, DEFAULT_SERVER } from "./connection";
import { EXPORT_USAGE, exportCommand } from "./export-command";
import { IMPORT_USAGE, importCommand } from "./import-command";
import { processOutput, type Output } from "./output";
import { PROJECTIONS_USAGE, projectionsCommand } from "./projections-command";
import { STREAMS_USAGE, streamsCommand } from "./streams-command";
import { TAIL_USAGE, tailCommand } from "./tail-command";

/** The admin commands: each talks to a running server over gRPC, as any client would. */
export const CLI_COMMANDS = ["streams", "projections", "append", "tail", "export", "import"] as const;

const CONNECTION_USAGE = `
Every command reaches a server with:
  --server URL   the server (EVENTSTORE_URL; default ${DEFAULT_SERVER}); https:// for TLS
  --ca FILE      the CA that signed an https:// server's certificate (EVENTSTORE_CA)
  --token TOKEN  an API key or JWT, sent as authorization: Bearer (EVENTSTORE_TOKEN, which
                 other users cannot see in the process list); refused over http:// to another
                 host unless --plaintext-token
`;

const USAGES: Record<(typeof CLI_COMMANDS)[number], string> = {
  streams: STREAMS_USAGE,
  projections: PROJECTIONS_USAGE,
  append: APPEND_USAGE,
  tail: TAIL_USAGE,
  export: EXPORT_USAGE,
  import: IMPORT_USAGE,
};

const FLAGS = {
  server: { type: "string" },
  ca: { type: "string" },
  token: { type: "string" },
  "plaintext-token": { type: "boolean" },
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  prefix: { type: "string" },
  category: { type: "string" },
  "include-deleted": { type: "boolean" },
  "expected-revision": { type: "string" },
  expected: { type: "string" },
  type: { type: "string", multiple: true },
  data: { type: "string" },
  "data-file": { type: "string" },
  "content-type": { type: "string" },
  metadata: { type: "string" },
  id: { type: "string" },
  from: { type: "string" },
  count: { type: "string" },
  output: { type: "string" },
  "from-position": { type: "string" },
  "batch-events": { type: "string" },
} as const;

/** Which flags each command takes, besides the connection's and --help. */
const ACCEPTS: Record<(typeof CLI_COMMANDS)[number], (keyof typeof FLAGS)[]> = {
  streams: ["json", "prefix", "include-deleted", "expected-revision"],
  projections: ["json", "prefix"],
  append: ["type", "data", "data-file", "content-type", "metadata", "id", "expected-revision", "expected"],
  tail: ["category", "prefix", "type", "from", "count", "json"],
  export: ["output", "from-position", "category", "prefix"],
  import: ["batch-events"],
};

export function isCliCommand(command: string | undefined): command is (typeof CLI_COMMANDS)[number] {
  return (CLI_COMMANDS as readonly string[]).includes(command ?? "");
}

/** Runs an admin command; answers the exit code (0 done, 1 the server refused or failed, 2 a usage error). */
export async function runCli(argv: string[], env: NodeJS.ProcessEnv, output: Output = processOutput()): Promise<number> {
  const command = argv[0];
  if (!isCliCommand(command)) throw new Error(`not an admin command: ${command}`);
  const usage = USAGES[command] + CONNECTION_USAGE;
  // Ctrl-C ends a tail or an export cleanly (what was written stays whole); any other command
  // is stopped by it at once, as by default.
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const stoppable = command === "tail" || command === "export";
  if (stoppable) {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }
  try {
    const { values, positionals } = parseArgs({ args: argv.slice(1), options: FLAGS, allowPositionals: true });
    if (values.help) {
      output.out(usage.trimEnd());
      return 0;
    }
    for (const flag of Object.keys(values)) {
      if (!["server", "ca", "token", "plaintext-token", "help", ...ACCEPTS[command]].includes(flag)) throw new CliError(`${command} takes no --${flag}`);
    }
    const connection = connectTo({
      server: values.server ?? env.EVENTSTORE_URL ?? DEFAULT_SERVER,
      ca: values.ca ?? env.EVENTSTORE_CA,
      token: values.token ?? env.EVENTSTORE_TOKEN,
      plaintextToken: values["plaintext-token"],
    });
    const types = values.type ?? [];
    switch (command) {
      case "streams": {
        const [action = "", stream, ...rest] = positionals;
        noMore(rest);
        await streamsCommand(connection, { action, stream, prefix: values.prefix ?? "", includeDeleted: values["include-deleted"] ?? false, expectedRevision: number("expected-revision", values["expected-revision"]), json: values.json ?? false }, output);
        break;
      }
      case "projections": {
        const [action = "", name, ...rest] = positionals;
        noMore(rest);
        await projectionsCommand(connection, { action, name, prefix: values.prefix ?? "", json: values.json ?? false }, output);
        break;
      }
      case "append": {
        const [stream, ...rest] = positionals;
        noMore(rest);
        if (types.length > 1) throw new CliError("one --type: an append here is one event");
        await appendCommand(connection, {
          stream,
          type: types[0],
          data: values.data,
          dataFile: values["data-file"],
          contentType: values["content-type"] ?? "application/json",
          metadata: values.metadata,
          id: values.id,
          expectedRevision: number("expected-revision", values["expected-revision"]),
          expected: values.expected,
        }, output);
        break;
      }
      case "tail": {
        const [stream, ...rest] = positionals;
        noMore(rest);
        const count = number("count", values.count);
        if (count === 0n) throw new CliError("--count must be at least 1");
        await tailCommand(connection, { stream, category: values.category, prefix: values.prefix, types, from: values.from ?? "end", count: count === undefined ? undefined : Number(count), json: values.json ?? false }, output, stop.signal);
        break;
      }
      case "export":
        noMore(positionals);
        await exportCommand(connection, { output: values.output, fromPosition: number("from-position", values["from-position"]), category: values.category, prefix: values.prefix }, output, stop.signal);
        break;
      case "import": {
        const [file, ...rest] = positionals;
        noMore(rest);
        const batch = number("batch-events", values["batch-events"]);
        await importCommand(connection, { file, batchEvents: batch === undefined ? 500 : Math.max(1, Number(batch)) }, output);
        break;
      }
    }
    return 0;
  } catch (e) {
    if (e instanceof CliError || isParseArgsError(e)) {
      output.err(`eventstore ${command}: ${(e as Error).message}\n\n${usage}`);
      return 2;
    }
    // The server's refusal in its words: [code] message, with the ErrorInfo's reason when it has one.
    output.err(`eventstore ${command}: ${e instanceof ConnectError ? describe(e) : e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

function describe(e: ConnectError): string {
  const [info] = e.findDetails(ErrorInfoSchema);
  return info ? `${e.message} (${info.reason})` : e.message;
}

function isParseArgsError(e: unknown): boolean {
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
}

function noMore(rest: string[]): void {
  if (rest.length > 0) throw new CliError(`unexpected arguments: ${rest.join(" ")}`);
}

function number(flag: string, text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new CliError(`--${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return BigInt(text);
}

import { readFileSync } from "node:fs";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { AppendResponseSchema, ExpectedState } from "../../gen/eventstore/v1/eventstore_pb";
import { CliError, type Connection } from "./connection";
import { jsonLine, type Output } from "./output";

export const APPEND_USAGE = `Usage: eventstore append STREAM --type TYPE [options]

  --data TEXT             the event's data (JSON for the default content type)
  --data-file FILE        the event's data from a file (- for stdin)
  --content-type TYPE     default application/json
  --metadata JSON         a JSON object
  --id UUID               the event's id (default: a new one); sending it again is an idempotent retry
  --expected-revision N   the stream's revision now; or --expected no-stream|exists|any
Prints the append's result as JSON.
`;

export interface AppendArgs {
  stream?: string;
  type?: string;
  data?: string;
  dataFile?: string;
  contentType: string;
  metadata?: string;
  id?: string;
  expectedRevision?: bigint;
  expected?: string;
}

const STATES: Record<string, ExpectedState> = { "no-stream": ExpectedState.NO_STREAM, exists: ExpectedState.STREAM_EXISTS, any: ExpectedState.ANY };

export async function appendCommand(c: Connection, args: AppendArgs, output: Output): Promise<void> {
  if (!args.stream) throw new CliError("name the stream");
  if (!args.type) throw new CliError("--type is required");
  if (args.data !== undefined && args.dataFile !== undefined) throw new CliError("--data and --data-file exclude each other");
  if (args.expected !== undefined && args.expectedRevision !== undefined) throw new CliError("--expected and --expected-revision exclude each other");
  if (args.expected !== undefined && !Object.hasOwn(STATES, args.expected)) throw new CliError(`--expected must be no-stream, exists or any, got ${args.expected}`);
  const data = args.dataFile !== undefined ? readFileSync(args.dataFile === "-" ? 0 : args.dataFile) : new TextEncoder().encode(args.data ?? "");
  let metadata: JsonObject | undefined;
  if (args.metadata !== undefined) {
    let parsed: JsonValue;
    try {
      parsed = JSON.parse(args.metadata) as JsonValue;
    } catch (e) {
      throw new CliError(`--metadata is not JSON: ${(e as Error).message}`);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new CliError("--metadata must be a JSON object");
    metadata = parsed;
  }
  const expected = args.expectedRevision !== undefined
    ? { case: "expectedRevision" as const, value: args.expectedRevision }
    : args.expected !== undefined ? { case: "expectedState" as const, value: STATES[args.expected] } : undefined;
  const result = await c.events.append({
    stream: args.stream,
    events: [{ id: args.id ?? "", type: args.type, contentType: args.contentType, payload: { case: "data", value: data }, metadata }],
    expected,
  });
  output.out(jsonLine(AppendResponseSchema, result));
}

import { RecordedEventSchema, StartPoint, type SubscribeRequest } from "../../gen/eventstore/v1/eventstore_pb";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { SubscribeRequestSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { CliError, type Connection } from "./connection";
import { eventLine, jsonLine, type Output } from "./output";

export const TAIL_USAGE = `Usage: eventstore tail [STREAM] [options]

A live view: one line per event as it is appended (position, stream@revision, type, data), in
colour on a terminal; Ctrl-C stops it.

  --category C          the streams of a category (the part of the name before the first '-')
  --prefix P            the streams whose name starts with P
  --type T              only events of this type (repeat for several)
  --from start|end|N    start at the beginning, the end (default), or after position N
  --count N             stop after N events
  --json                each event as a line of proto JSON (data in base64)
`;

export interface TailArgs {
  stream?: string;
  category?: string;
  prefix?: string;
  types: string[];
  from: string;
  count?: number;
  json: boolean;
}

export async function tailCommand(c: Connection, args: TailArgs, output: Output, signal: AbortSignal): Promise<void> {
  if (args.stream && (args.category || args.prefix)) throw new CliError("a stream, or --category / --prefix: not both");
  if (args.category && args.prefix) throw new CliError("--category and --prefix exclude each other");
  const request: MessageInitShape<typeof SubscribeRequestSchema> = {
    stream: args.stream ?? "",
    filter: {
      eventTypes: args.types,
      streams: args.category ? { case: "category", value: args.category } : args.prefix ? { case: "streamPrefix", value: args.prefix } : { case: undefined },
    },
    start: startOf(args.from),
  };
  let seen = 0;
  try {
    for await (const m of c.events.subscribe(request, { signal })) {
      if (m.message.case !== "events") continue;
      for (const e of m.message.value.events) {
        output.out(args.json ? jsonLine(RecordedEventSchema, e) : eventLine(e, output.colour));
        if (args.count !== undefined && ++seen >= args.count) return;
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
}

function startOf(from: string): SubscribeRequest["start"] {
  if (from === "start") return { case: "startPoint", value: StartPoint.START };
  if (from === "end") return { case: "startPoint", value: StartPoint.END };
  if (/^\d+$/.test(from)) return { case: "afterPosition", value: BigInt(from) };
  throw new CliError(`--from must be start, end or a position, got ${from}`);
}

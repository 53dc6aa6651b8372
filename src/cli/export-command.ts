import { createWriteStream } from "node:fs";
import { once } from "node:events";
import { Direction, RecordedEventSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { CliError, type Connection } from "./connection";
import { jsonLine, type Output } from "./output";
import { createProgress } from "./progress";

export const EXPORT_USAGE = `Usage: eventstore export [options] > events.ndjson

Writes the log, in order, one event per line of proto JSON (position, stream, revision, id, type,
content type, data in base64, metadata, stored time). Progress goes to stderr, with the last
position written: an export that stopped resumes with --from-position after it.

  --output FILE          write here instead of stdout
  --from-position N      start at position N (inclusive)
  --category C | --prefix P   only these streams
`;

/** The output file, opened before anything is read: a path that cannot be written is a clear error. */
async function openForWriting(path: string) {
  const file = createWriteStream(path);
  try {
    await once(file, "open");
  } catch (e) {
    throw new CliError(`--output ${path}: ${(e as Error).message}`);
  }
  return file;
}

export interface ExportArgs {
  output?: string;
  fromPosition?: bigint;
  category?: string;
  prefix?: string;
}

export async function exportCommand(c: Connection, args: ExportArgs, output: Output, signal: AbortSignal): Promise<void> {
  const filter = { streams: args.category ? { case: "category" as const, value: args.category } : args.prefix ? { case: "streamPrefix" as const, value: args.prefix } : { case: undefined } };
  // The head when the export starts: what the progress counts towards.
  let head = 0n;
  for await (const page of c.events.readAll({ direction: Direction.BACKWARDS, limit: 1n }, { signal })) head = page.events[0]?.position ?? head;
  const file = args.output ? await openForWriting(args.output) : undefined;
  const write = async (line: string) => {
    if (!file) return output.out(line);
    if (!file.write(line + "\n")) await once(file, "drain");
  };
  const progress = createProgress(output, "exported", head);
  try {
    for await (const page of c.events.readAll({ direction: Direction.FORWARDS, fromPosition: args.fromPosition, filter }, { signal })) {
      for (const e of page.events) await write(jsonLine(RecordedEventSchema, e));
      const last = page.events.at(-1);
      if (last) progress.advance(page.events.length, last.position);
    }
  } finally {
    progress.done();
    if (file) await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
  }
}

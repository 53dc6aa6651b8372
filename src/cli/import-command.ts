import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { fromJsonString, type MessageInitShape } from "@bufbuild/protobuf";
import { ExpectedState, RecordedEventSchema, type AppendRequestSchema, type RecordedEvent } from "../../gen/eventstore/v1/eventstore_pb";
import { CliError, type Connection } from "./connection";
import type { Output } from "./output";
import { createProgress } from "./progress";

export const IMPORT_USAGE = `Usage: eventstore import [FILE] [options] < events.ndjson

Appends the events of an export (FILE, or stdin), in its order, each with its id, stream,
revision, type, content type, data and metadata: consecutive events of one stream go in one
append, at the revision they had. Positions are the target's own; stored times are the time of
the import. Running it again resumes: an event already imported is the same event again (an
idempotent retry), and the rest follow.

  --batch-events N   most events in one append (default 500)
`;

export interface ImportArgs {
  file?: string;
  batchEvents: number;
}

export async function importCommand(c: Connection, args: ImportArgs, output: Output): Promise<void> {
  const input = args.file && args.file !== "-" ? createReadStream(args.file) : process.stdin;
  const progress = createProgress(output, "imported");
  let batch: RecordedEvent[] = [];
  let line = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const [first] = batch;
    const request: MessageInitShape<typeof AppendRequestSchema> = {
      stream: first.stream,
      expected: first.revision === 0n
        ? { case: "expectedState", value: ExpectedState.NO_STREAM }
        : { case: "expectedRevision", value: first.revision - 1n },
      events: batch.map((e) => ({ id: e.id, type: e.type, contentType: e.contentType, payload: e.payload, metadata: e.metadata })),
    };
    try {
      await c.events.append(request);
    } catch (e) {
      throw new Error(`the append of ${batch.length} events of ${first.stream} from revision ${first.revision} (line ${line - batch.length + 1}) failed: ${(e as Error).message}`, { cause: e });
    }
    progress.advance(batch.length, batch.at(-1)!.position);
    batch = [];
  };
  try {
    for await (const text of createInterface({ input, crlfDelay: Infinity })) {
      line++;
      if (text.trim() === "") continue;
      let event: RecordedEvent;
      try {
        event = fromJsonString(RecordedEventSchema, text);
      } catch (e) {
        throw new CliError(`line ${line} is not an exported event: ${(e as Error).message}`);
      }
      const last = batch.at(-1);
      if (last && (last.stream !== event.stream || event.revision !== last.revision + 1n || batch.length >= args.batchEvents)) await flush();
      batch.push(event);
    }
    await flush();
  } finally {
    progress.done();
  }
}

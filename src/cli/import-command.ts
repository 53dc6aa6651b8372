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
the import. Running it again with the same file and batch size resumes: a batch already
imported is the same append again (an idempotent retry), and the rest follow.

  --batch-events N   most events in one append (default 500); an append also holds at most
                     4 MiB of data and metadata, under the server's max-append-bytes
`;

// An exported line's length is more than its event's bytes (base64 data, JSON): under the
// default max-append-bytes of 16 MiB with room to spare.
const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export interface ImportArgs {
  file?: string;
  batchEvents: number;
}

export async function importCommand(c: Connection, args: ImportArgs, output: Output): Promise<void> {
  const input = args.file && args.file !== "-" ? createReadStream(args.file) : process.stdin;
  const progress = createProgress(output, "imported");
  let batch: RecordedEvent[] = [];
  let batchBytes = 0;
  let line = 0;
  let batchLine = 0;
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
      throw new Error(`the append of ${batch.length} events of ${first.stream} from revision ${first.revision} (line ${batchLine}) failed: ${(e as Error).message}`, { cause: e });
    }
    progress.advance(batch.length, batch.at(-1)!.position);
    batch = [];
    batchBytes = 0;
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
      const bytes = text.length;
      const last = batch.at(-1);
      const full = batch.length >= args.batchEvents || batchBytes + bytes > MAX_BATCH_BYTES;
      if (last && (last.stream !== event.stream || event.revision !== last.revision + 1n || full)) await flush();
      if (batch.length === 0) batchLine = line;
      batch.push(event);
      batchBytes += bytes;
    }
    await flush();
  } finally {
    progress.done();
  }
}

import { ExpectedState, StreamInfoSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { CliError, type Connection } from "./connection";
import { jsonLine, type Output } from "./output";

export const STREAMS_USAGE = `Usage: eventstore streams <ls|info|delete|tombstone> [options]

  streams ls [--prefix P] [--include-deleted]   one line per stream: name, revision, position
  streams info STREAM                           the stream's record, as JSON
  streams delete STREAM [--expected-revision N] soft delete: reads start after its last event
  streams tombstone STREAM [--expected-revision N]
                                                delete for ever: the name can never be used again
`;

export interface StreamsArgs {
  action: string;
  stream?: string;
  prefix: string;
  includeDeleted: boolean;
  expectedRevision?: bigint;
  json: boolean;
}

export async function streamsCommand(c: Connection, args: StreamsArgs, output: Output): Promise<void> {
  switch (args.action) {
    case "ls": {
      let pageToken = "";
      do {
        const page = await c.events.listStreams({ prefix: args.prefix, pageSize: 1000, pageToken, includeDeleted: args.includeDeleted });
        for (const s of page.streams) {
          output.out(args.json ? jsonLine(StreamInfoSchema, s) : `${s.name}\trevision ${s.revision ?? "-"}\tposition ${s.position ?? "-"}${s.deleted ? "\tdeleted" : ""}`);
        }
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      return;
    }
    case "info": {
      const { stream } = await c.events.getStream({ stream: required(args.stream) });
      output.out(jsonLine(StreamInfoSchema, stream!));
      return;
    }
    case "delete":
    case "tombstone": {
      const expected = args.expectedRevision === undefined
        ? { case: "expectedState" as const, value: ExpectedState.STREAM_EXISTS }
        : { case: "expectedRevision" as const, value: args.expectedRevision };
      const request = { stream: required(args.stream), expected };
      const { stream } = args.action === "delete" ? await c.events.deleteStream(request) : await c.events.tombstoneStream(request);
      output.out(jsonLine(StreamInfoSchema, stream!));
      return;
    }
    default:
      throw new CliError(`unknown streams command: ${args.action || "(none)"}`);
  }
}

function required(stream: string | undefined): string {
  if (!stream) throw new CliError("name the stream");
  return stream;
}

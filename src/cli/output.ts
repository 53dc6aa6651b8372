import { toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { RecordedEvent } from "../../gen/eventstore/v1/eventstore_pb";
import { RecordedEventSchema } from "../../gen/eventstore/v1/eventstore_pb";

/** Where a command writes: stdout for results, stderr for progress; colour only on a terminal. */
export interface Output {
  out(line: string): void;
  err(text: string): void;
  colour: boolean;
  /** stderr is a terminal: progress may redraw its line. */
  interactive: boolean;
}

// A reader that went away (`| head`) ends the command quietly, not with a stack trace.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code === "EPIPE") process.exit(0);
  throw e;
});

export const processOutput = (): Output => ({
  out: (line) => void process.stdout.write(line + "\n"),
  err: (text) => void process.stderr.write(text),
  colour: process.stdout.isTTY === true && !process.env.NO_COLOR,
  interactive: process.stderr.isTTY === true,
});

/** A message as one line of canonical proto JSON (uint64 as strings, bytes as base64). */
export function jsonLine<D extends DescMessage>(schema: D, message: MessageShape<D>): string {
  return toJsonString(schema, message);
}

const dim = (s: string, c: boolean) => (c ? `\x1b[2m${s}\x1b[0m` : s);
const bold = (s: string, c: boolean) => (c ? `\x1b[1m${s}\x1b[0m` : s);
const cyan = (s: string, c: boolean) => (c ? `\x1b[36m${s}\x1b[0m` : s);
const PREVIEW = 120;

/** One event in one line: position, stream@revision, type, and its data (text, cut at 120 characters). */
export function eventLine(e: RecordedEvent, colour: boolean): string {
  let data = "";
  if (e.payload.case === "json") data = JSON.stringify(toJsonPayload(e));
  else if (e.payload.case === "data") {
    const text = new TextDecoder("utf-8", { fatal: false }).decode(e.payload.value);
    data = /[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]/.test(text) ? `<${e.payload.value.byteLength} bytes>` : text.replace(/\s+/g, " ");
  }
  if (data.length > PREVIEW) data = data.slice(0, PREVIEW - 1) + "…";
  return `${dim(String(e.position).padStart(8), colour)} ${cyan(`${visible(e.stream)}@${e.revision}`, colour)} ${bold(visible(e.type), colour)} ${visible(data)}`;
}

/** Control characters (C0, DEL, C1) as \u escapes: an event's text must not drive the terminal. */
function visible(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function toJsonPayload(e: RecordedEvent): unknown {
  return (JSON.parse(toJsonString(RecordedEventSchema, e)) as { json?: unknown }).json;
}

import { invalidArgument } from "./errors";
import type { RecordedEvent } from "./event";
import { validateStreamName } from "./stream-name";

/** The type of a link event: one that points to another event (KurrentDB's convention). */
export const LINK_EVENT_TYPE = "$>";

export interface LinkTarget {
  stream: string;
  revision: bigint;
}

const LINK_DATA = /^(0|[1-9][0-9]{0,19})@([\s\S]+)$/;

/** Where a link event points; undefined for any other event (or a link whose data is not a link's). */
export function linkTarget(event: Pick<RecordedEvent, "type" | "data">): LinkTarget | undefined {
  if (event.type !== LINK_EVENT_TYPE) return undefined;
  const match = LINK_DATA.exec(Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength).toString("utf8"));
  if (!match) return undefined;
  const revision = BigInt(match[1]);
  return revision <= 0x7fffffffffffffffn ? { stream: match[2], revision } : undefined;
}

/** A proposed link event must point somewhere that can exist: INVALID_ARGUMENT otherwise. */
export function validateLinkData(data: Uint8Array, field: string): void {
  const target = linkTarget({ type: LINK_EVENT_TYPE, data });
  if (!target) throw invalidArgument(field, `a link event's data is "<revision>@<stream>"`);
  validateStreamName(target.stream, field);
}

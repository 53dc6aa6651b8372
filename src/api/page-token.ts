import { invalidArgument } from "../domain";

// Page tokens are opaque to clients; they carry the prefix so a token cannot be replayed
// against another listing.
export function encodePageToken(last: string, prefix: string): string {
  return Buffer.from(JSON.stringify({ v: 1, last, prefix })).toString("base64url");
}

export function decodePageToken(token: string, prefix: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { v?: number; last?: unknown; prefix?: unknown };
    if (parsed.v === 1 && typeof parsed.last === "string" && parsed.prefix === prefix) return parsed.last;
  } catch {
    // fall through
  }
  throw invalidArgument("page_token", "not a page token of this listing");
}

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** A list request's page size: 0 means the default, more than the most means the most. */
export function toPageSize(pageSize: number): number {
  if (pageSize < 0) throw invalidArgument("page_size", `must not be negative (got ${pageSize})`);
  return pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(pageSize, MAX_PAGE_SIZE);
}

import { createHash } from "node:crypto";

/** Member `member` of a group of `size` subscribers: it gets the streams that hash to it. */
export interface ConsumerGroup {
  member: number;
  size: number;
}

/**
 * The member of a group of `size` that owns `stream`: the first 8 hex digits of the MD5 of the
 * UTF-8 name, read as an unsigned 32-bit number, modulo `size`. Any client can compute it, and
 * so can PostgreSQL (see filter-sql.ts), whose `md5(text)` hashes UTF-8 in a UTF8 database.
 */
export function consumerGroupMember(stream: string, size: number): number {
  return streamHash(stream) % size;
}

/** The unsigned 32-bit hash of a stream name that consumer groups divide. */
export function streamHash(stream: string): number {
  let hash = recent.get(stream);
  if (hash === undefined) {
    hash = createHash("md5").update(stream, "utf8").digest().readUInt32BE(0);
    // Every member of every group hashes each live event's stream: remember the busy ones.
    if (recent.size >= RECENT_STREAMS) recent.clear();
    recent.set(stream, hash);
  }
  return hash;
}

const RECENT_STREAMS = 10_000;
const recent = new Map<string, number>();

import { createHash } from "node:crypto";
import type { EventStoreClient } from "./event-store-client";
import { DuplicateEventIdError } from "./errors";
import type { EventData } from "./events";
import { applyBeforeAppend, type Middleware } from "./middleware";

/** An event a projection's handler emitted or linked, to append to `stream`. */
export interface EmittedEvent {
  stream: string;
  event: EventData;
}

/**
 * Appends emitted events and links in order, one append per run of the same stream. Their ids
 * are those of `emittedEventId`: after a crash, the ones stored already are idempotent retries.
 */
export async function appendEmitted(client: EventStoreClient, middleware: Middleware[], emits: EmittedEvent[]): Promise<void> {
  for (let i = 0; i < emits.length; ) {
    let j = i + 1;
    while (j < emits.length && emits[j].stream === emits[i].stream) j++;
    const stream = emits[i].stream;
    const events = await Promise.all(emits.slice(i, j).map((e) => applyBeforeAppend(middleware, e.event, { stream })));
    try {
      await client.append(stream, events);
    } catch (e) {
      // Some of them are stored already (a crash after an earlier flush): one by one, the stored
      // ones are idempotent retries and the rest are appended.
      if (!(e instanceof DuplicateEventIdError)) throw e;
      for (const event of events) await client.append(stream, [event]);
    }
    i = j;
  }
}

/**
 * The id of the n-th event a handler emits or links for a source event: a name-based (v5-style)
 * UUID of the projection, its record's creation time (a projection deleted and created again
 * emits anew), the source event and what is written, so handling the event again after a crash
 * writes the same ids.
 */
export function emittedEventId(projection: string, createdAt: Date, sourceId: string, what: string, n: number): string {
  const hash = createHash("sha1").update(`${projection}\n${createdAt.toISOString()}\n${sourceId}\n${what}\n${n}`).digest();
  hash[6] = (hash[6] & 0x0f) | 0x50;
  hash[8] = (hash[8] & 0x3f) | 0x80;
  const hex = hash.subarray(0, 16).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

import type { EventStoreClient } from "./event-store-client";
import { createEvents } from "./payload";
import type { RawClient } from "./raw-baseline";

export const READ_STREAM = "read-stream";
/** How many clients of each side seedReadData needs. */
export const SEED_WRITERS = 8;
const BATCH = 100;

interface Batch {
  stream: string;
  first: number;
  count: number;
}

/**
 * Gives both sides the same data to read: `streamEvents` events in READ_STREAM, then streams of
 * 100 events until the log holds `logEvents` events, in 100-event appends by SEED_WRITERS writers.
 */
export async function seedReadData(ours: EventStoreClient[], raw: RawClient[], streamEvents: number, logEvents: number): Promise<void> {
  // The read stream's batches must land in order, so writer 0 takes all of them.
  const perWriter: Batch[][] = Array.from({ length: SEED_WRITERS }, () => []);
  for (let first = 0; first < streamEvents; first += BATCH) {
    perWriter[0].push({ stream: READ_STREAM, first, count: Math.min(BATCH, streamEvents - first) });
  }
  for (let k = 0, left = logEvents - streamEvents; left > 0; k++, left -= BATCH) {
    perWriter[1 + (k % (SEED_WRITERS - 1))].push({ stream: `seed-${k}`, first: 0, count: Math.min(BATCH, left) });
  }
  await Promise.all(
    perWriter.map(async (batches, w) => {
      for (const { stream, first, count } of batches) {
        const events = createEvents(count, first);
        await Promise.all([
          ours[w].append(stream, events, first === 0 ? undefined : BigInt(first - 1)),
          raw[w].insertBatch(stream, BigInt(first), events),
        ]);
      }
    }),
  );
}

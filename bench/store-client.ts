import { EMPTY_FILTER } from "../src/domain";
import type { EventStore } from "../src/store";
import type { EventStoreClient } from "./event-store-client";

/**
 * Our store called in this process, without the server: the same SQL, pool and mapping to
 * domain events, but no gRPC, HTTP/2 or protobuf. Set beside the server's figures, it shows
 * which part of the gap to raw SQL is the storage and which is the serving.
 */
export function createStoreClient(store: EventStore): EventStoreClient {
  return {
    async append(stream, events, expectedRevision) {
      await store.append([{ stream, expected: expectedRevision ?? "no_stream", events }]);
    },
    readStream: (stream) => count(store.readStream(stream, { direction: "forwards" })),
    readAll: () => count(store.readAll({ direction: "forwards", filter: EMPTY_FILTER })),
    close: () => {},
  };
}

async function count(pages: AsyncIterable<unknown[]>): Promise<number> {
  let n = 0;
  for await (const page of pages) n += page.length;
  return n;
}

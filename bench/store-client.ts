import { EMPTY_FILTER, isEventStoreError } from "../src/domain";
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
      try {
        await store.append([{ stream, expected: expectedRevision ?? "no_stream", events }]);
        return true;
      } catch (e) {
        if (isEventStoreError(e) && e.kind === "WRONG_EXPECTED_REVISION") return false;
        throw e;
      }
    },
    async streamRevision(stream) {
      try {
        return (await store.getStream(stream)).revision;
      } catch (e) {
        if (isEventStoreError(e) && e.kind === "STREAM_NOT_FOUND") return undefined;
        throw e;
      }
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

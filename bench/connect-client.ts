import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { EventStoreService, ExpectedState, type ProposedEventSchema } from "../gen/eventstore/v1/eventstore_pb";
import { connectAuthInterceptors } from "./bench-auth";
import type { EventStoreClient } from "./event-store-client";
import type { BenchEvent } from "./payload";

/** Our server through @connectrpc/connect-node's gRPC transport (HTTP/2), one connection. */
export function createConnectClient(url: string): EventStoreClient {
  const sessionManager = new Http2SessionManager(url);
  const transport = createGrpcTransport({ baseUrl: url, sessionManager, interceptors: connectAuthInterceptors() });
  const client = createClient(EventStoreService, transport);
  return {
    async append(stream, events, expectedRevision) {
      try {
        await client.append({
          stream,
          events: events.map(toProposedEvent),
          expected:
            expectedRevision === undefined
              ? { case: "expectedState", value: ExpectedState.NO_STREAM }
              : { case: "expectedRevision", value: expectedRevision },
        });
        return true;
      } catch (e) {
        if (ConnectError.from(e).code === Code.Aborted) return false;
        throw e;
      }
    },
    async streamRevision(stream) {
      try {
        return (await client.getStream({ stream })).stream?.revision;
      } catch (e) {
        if (ConnectError.from(e).code === Code.NotFound) return undefined;
        throw e;
      }
    },
    async readStream(stream) {
      let n = 0;
      for await (const res of client.readStream({ stream })) n += res.events.length;
      return n;
    },
    async readAll() {
      let n = 0;
      for await (const res of client.readAll({})) n += res.events.length;
      return n;
    },
    close: () => sessionManager.abort(),
  };
}

function toProposedEvent(e: BenchEvent): MessageInitShape<typeof ProposedEventSchema> {
  return {
    id: e.id,
    type: e.type,
    contentType: e.contentType,
    payload: { case: "data", value: e.data },
    metadata: e.metadata,
  };
}

import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { grpcJsCallMetadata } from "./bench-auth";
import type { EventStoreClient } from "./event-store-client";
import type { BenchEvent } from "./payload";

interface ReadResponse {
  events: unknown[];
}

interface ServiceClient extends grpc.Client {
  append(request: object, metadata: grpc.Metadata, callback: (err: grpc.ServiceError | null) => void): grpc.ClientUnaryCall;
  getStream(
    request: object,
    metadata: grpc.Metadata,
    callback: (err: grpc.ServiceError | null, res?: { stream?: { revision?: string } }) => void,
  ): grpc.ClientUnaryCall;
  readStream(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<ReadResponse>;
  readAll(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<ReadResponse>;
}

let serviceClient: grpc.ServiceClientConstructor | undefined;

/** The client stub from our .proto, as a user of @grpc/grpc-js would load it. */
export function serviceClientConstructor(): grpc.ServiceClientConstructor {
  if (serviceClient) return serviceClient;
  const protoRoot = join(__dirname, "..", "..", "proto");
  const definition = loadSync("eventstore/v1/eventstore.proto", {
    includeDirs: [protoRoot],
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    eventstore: { v1: { EventStoreService: grpc.ServiceClientConstructor } };
  };
  serviceClient = loaded.eventstore.v1.EventStoreService;
  return serviceClient;
}

/** Our server through @grpc/grpc-js, on a connection of its own (a local subchannel pool). */
export function createGrpcJsClient(url: string): EventStoreClient {
  const Client = serviceClientConstructor();
  const client = new Client(new URL(url).host, grpc.credentials.createInsecure(), {
    "grpc.use_local_subchannel_pool": 1,
  }) as unknown as ServiceClient;
  const metadata = grpcJsCallMetadata();
  return {
    append(stream, events, expectedRevision) {
      const request = {
        stream,
        events: events.map(toProposedEvent),
        ...(expectedRevision === undefined
          ? { expectedState: "EXPECTED_STATE_NO_STREAM" }
          : { expectedRevision: expectedRevision.toString() }),
      };
      return new Promise((resolve, reject) => {
        client.append(request, metadata, (err) => (err?.code === grpc.status.ABORTED ? resolve(false) : err ? reject(err) : resolve(true)));
      });
    },
    streamRevision(stream) {
      return new Promise((resolve, reject) => {
        client.getStream({ stream }, metadata, (err, res) => {
          if (err?.code === grpc.status.NOT_FOUND) return resolve(undefined);
          if (err) return reject(err);
          const revision = res?.stream?.revision;
          resolve(revision === undefined ? undefined : BigInt(revision));
        });
      });
    },
    readStream: (stream) => count(client.readStream({ stream }, metadata)),
    readAll: () => count(client.readAll({}, metadata)),
    close: () => client.close(),
  };
}

function toProposedEvent(e: BenchEvent) {
  return {
    id: e.id,
    type: e.type,
    contentType: e.contentType,
    data: e.data,
    metadata: { fields: Object.fromEntries(Object.entries(e.metadata).map(([k, v]) => [k, { stringValue: v }])) },
  };
}

function count(call: grpc.ClientReadableStream<ReadResponse>): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    call.on("data", (res: ReadResponse) => (n += res.events.length));
    call.on("error", reject);
    call.on("end", () => resolve(n));
  });
}

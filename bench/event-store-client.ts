import type { BenchEvent } from "./payload";
import { createConnectClient } from "./connect-client";
import { createGrpcJsClient } from "./grpc-js-client";

/** The calls the benchmark makes on our server, whatever the gRPC library. */
export interface EventStoreClient {
  /**
   * Appends to `stream` expecting `expectedRevision` (undefined: no stream yet). Answers false,
   * having written nothing, when the stream is at another revision; throws on any other error.
   */
  append(stream: string, events: BenchEvent[], expectedRevision: bigint | undefined): Promise<boolean>;
  /** The revision of the stream's last event; undefined when it has none. */
  streamRevision(stream: string): Promise<bigint | undefined>;
  /** Reads a whole stream forwards; answers the number of events. */
  readStream(stream: string): Promise<number>;
  /** Reads the whole log forwards; answers the number of events. */
  readAll(): Promise<number>;
  close(): void;
}

/** grpc-js first: it measured faster than Connect's gRPC transport in every case here (docs/benchmarks.md). */
export const CLIENT_KINDS = ["grpc-js", "connect"] as const;
export type ClientKind = (typeof CLIENT_KINDS)[number];

/**
 * A client on an HTTP/2 connection of its own, with its library's defaults: both accept gzip,
 * so the server compresses read responses over 1 KiB.
 */
export function createEventStoreClient(kind: ClientKind, url: string): EventStoreClient {
  return kind === "grpc-js" ? createGrpcJsClient(url) : createConnectClient(url);
}

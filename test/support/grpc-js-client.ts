import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ErrorInfoSchema, type ErrorInfo } from "../../gen/google/rpc/error_details_pb";

const PROTO_DIR = join(__dirname, "../../proto");

/** A client built the canonical way: @grpc/proto-loader on our .proto files, @grpc/grpc-js calls. */
export function createGrpcJsClient(
  address: string,
  service: "EventStoreService" | "ProjectionService" = "EventStoreService",
): grpc.Client & Record<string, Function> {
  const file = service === "EventStoreService" ? "eventstore.proto" : "projections.proto";
  const definition = protoLoader.loadSync(join(PROTO_DIR, "eventstore/v1", file), {
    includeDirs: [PROTO_DIR],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as any;
  return new pkg.eventstore.v1[service](address, grpc.credentials.createInsecure());
}

export function unary<T = any>(client: any, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) => client[method](request, (err: grpc.ServiceError | null, res: T) => (err ? reject(err) : resolve(res))));
}

export function serverStream<T = any>(client: any, method: string, request: unknown): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const messages: T[] = [];
    const call = client[method](request);
    call.on("data", (m: T) => messages.push(m));
    call.on("error", reject);
    call.on("end", () => resolve(messages));
  });
}

/** The google.rpc.ErrorInfo carried in a gRPC error's grpc-status-details-bin trailer. */
export function errorInfo(err: grpc.ServiceError): ErrorInfo | undefined {
  const [bin] = err.metadata?.get("grpc-status-details-bin") ?? [];
  if (!bin) return undefined;
  // google.rpc.Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }
  const status = new BinaryReader(bin as Buffer);
  while (status.pos < status.len) {
    const [field, wire] = status.tag();
    if (field !== 3) {
      status.skip(wire);
      continue;
    }
    const any = new BinaryReader(status.bytes());
    let typeUrl = "";
    let value: Uint8Array = new Uint8Array();
    while (any.pos < any.len) {
      const [f, w] = any.tag();
      if (f === 1) typeUrl = any.string();
      else if (f === 2) value = any.bytes();
      else any.skip(w as WireType);
    }
    if (typeUrl.endsWith("google.rpc.ErrorInfo")) return fromBinary(ErrorInfoSchema, value);
  }
  return undefined;
}

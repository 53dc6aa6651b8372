import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { createFileRegistry, fromBinary, type DescFile } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import { createClient, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { EventStoreService, file_eventstore_v1_eventstore } from "../../gen/eventstore/v1/eventstore_pb";
import { file_grpc_health_v1_health } from "../../gen/grpc/health/v1/health_pb";
import { file_grpc_reflection_v1_reflection } from "../../gen/grpc/reflection/v1/reflection_pb";
import { file_grpc_reflection_v1alpha_reflection } from "../../gen/grpc/reflection/v1alpha/reflection_pb";
import { createHealthState, registerHealthService } from "../../src/api/health-service";
import { readDocumentedDescriptors } from "../../src/api/documented-descriptors";
import { registerReflectionService } from "../../src/api/reflection-service";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb";

const served: DescFile[] = [
  file_eventstore_v1_eventstore,
  file_grpc_health_v1_health,
  file_grpc_reflection_v1_reflection,
  file_grpc_reflection_v1alpha_reflection,
  file_google_rpc_error_details,
];

function routes(router: ConnectRouter): void {
  router.service(EventStoreService, {
    getStream: async (request) => ({ stream: { name: request.stream, firstRevision: 7n } }),
  });
  registerHealthService(router, createHealthState());
  registerReflectionService(router, served, readDocumentedDescriptors());
}

type Version = "v1" | "v1alpha";
// A response as @grpc/proto-loader decodes it; `messageResponse` names the oneof case that is set.
type ReflectionResponse = Record<string, any> & { messageResponse: string };

let server: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let port: number;
const clients: grpc.Client[] = [];

beforeAll(async () => {
  server = http2.createServer(connectNodeAdapter({ routes }));
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  clients.forEach((client) => client.close());
  sessions.forEach((session) => session.destroy());
  await new Promise((resolve) => server.close(resolve));
});

function reflectionClient(version: Version): grpc.Client {
  const definition = protoLoader.loadSync(`grpc/reflection/${version}/reflection.proto`, {
    includeDirs: [path.join(__dirname, "../../proto")],
    oneofs: true,
    arrays: true,
  });
  const loaded = grpc.loadPackageDefinition(definition) as any;
  const Client = loaded.grpc.reflection[version].ServerReflection as grpc.ServiceClientConstructor;
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  clients.push(client);
  return client;
}

/** Sends the requests on one ServerReflectionInfo stream and collects its responses. */
async function reflect(requests: object[], version: Version = "v1"): Promise<ReflectionResponse[]> {
  const call: grpc.ClientDuplexStream<object, ReflectionResponse> = (reflectionClient(version) as any).ServerReflectionInfo();
  const responses: ReflectionResponse[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    call.on("data", (response: ReflectionResponse) => responses.push(response));
    call.on("end", resolve);
    call.on("error", reject);
  });
  requests.forEach((request) => call.write(request));
  call.end();
  await ended;
  return responses;
}

function filesOf(response: ReflectionResponse): FileDescriptorProto[] {
  expect(response.messageResponse).toBe("fileDescriptorResponse");
  return response.fileDescriptorResponse.fileDescriptorProto.map((bytes: Buffer) =>
    fromBinary(FileDescriptorProtoSchema, bytes),
  );
}

const names = (files: FileDescriptorProto[]) => files.map((file) => file.name);

describe("server reflection", () => {
  test.each<Version>(["v1", "v1alpha"])("%s lists every served service", async (version) => {
    const [response] = await reflect([{ listServices: "" }], version);

    expect(response.messageResponse).toBe("listServicesResponse");
    expect(response.listServicesResponse.service.map((s: { name: string }) => s.name).sort()).toEqual([
      "eventstore.v1.EventStoreService",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ]);
  });

  test("a service's file comes with all its imports, and describes its methods", async () => {
    const [response] = await reflect([{ fileContainingSymbol: "eventstore.v1.EventStoreService" }]);

    const files = filesOf(response);
    expect(names(files)).toEqual([
      "eventstore/v1/eventstore.proto",
      "google/protobuf/struct.proto",
      "google/protobuf/timestamp.proto",
    ]);
    const service = files[0].service.find((s) => s.name === "EventStoreService");
    expect(service?.method.find((m) => m.name === "GetStream")).toMatchObject({
      inputType: ".eventstore.v1.GetStreamRequest",
      outputType: ".eventstore.v1.GetStreamResponse",
    });
    expect(files[0].dependency).toEqual(["google/protobuf/struct.proto", "google/protobuf/timestamp.proto"]);
  });

  test("reflected descriptors keep what generated code strips: json names and proto3 optional", async () => {
    const [response] = await reflect([{ fileByFilename: "eventstore/v1/eventstore.proto" }]);

    const streamInfo = filesOf(response)[0].messageType.find((m) => m.name === "StreamInfo")!;
    const field = (name: string) => streamInfo.field.find((f) => f.name === name);
    expect(field("first_revision")?.jsonName).toBe("firstRevision");
    expect(field("revision")?.proto3Optional).toBe(true);
  });

  test("files come with their source info: the proto's comments, for grpcurl describe", async () => {
    const [response] = await reflect([{ fileByFilename: "eventstore/v1/eventstore.proto" }]);
    const comments = filesOf(response)[0].sourceCodeInfo?.location.map((l) => l.leadingComments) ?? [];
    expect(comments).toContainEqual(expect.stringContaining("EventStoreService appends events to streams"));
    expect(comments).toContainEqual(expect.stringContaining("The log position reached: every matching event up to it has been sent"));
  });

  test("the error details every error carries are served, though no service declares them", async () => {
    const [response] = await reflect([{ fileContainingSymbol: "google.rpc.ErrorInfo" }]);
    expect(names(filesOf(response))).toEqual(["google/rpc/error_details.proto"]);
  });

  test("a client that knows only the reflected descriptors can call the service", async () => {
    const [response] = await reflect([{ fileContainingSymbol: "eventstore.v1.EventStoreService.GetStream" }]);
    const [file, ...imports] = filesOf(response);
    const registry = createFileRegistry(file, (name) => imports.find((i) => i.name === name));
    const service = registry.getService("eventstore.v1.EventStoreService")!;

    const transport = createGrpcTransport({ baseUrl: `http://127.0.0.1:${port}` });
    const client = createClient(service, transport) as Record<string, (request: object) => Promise<any>>;
    const answer = await client.getStream({ stream: "account-42" });

    expect(answer.$typeName).toBe("eventstore.v1.GetStreamResponse");
    expect(answer.stream).toMatchObject({ name: "account-42", firstRevision: 7n });
  });

  test.each([
    ["eventstore.v1.StreamInfo", "eventstore/v1/eventstore.proto"],
    ["eventstore.v1.StreamInfo.first_revision", "eventstore/v1/eventstore.proto"],
    ["eventstore.v1.DIRECTION_FORWARDS", "eventstore/v1/eventstore.proto"],
    ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"],
    ["grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"],
    ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
  ])("the symbol %s is found in %s", async (symbol, file) => {
    const [response] = await reflect([{ fileContainingSymbol: symbol }]);

    expect(names(filesOf(response))[0]).toBe(file);
  });

  test("a stream sends each import once, but always the file asked for", async () => {
    const responses = await reflect([
      { fileContainingSymbol: "eventstore.v1.EventStoreService" },
      { fileByFilename: "eventstore/v1/eventstore.proto" },
      { fileByFilename: "google/protobuf/timestamp.proto" },
    ]);

    expect(responses.map((response) => names(filesOf(response)))).toEqual([
      ["eventstore/v1/eventstore.proto", "google/protobuf/struct.proto", "google/protobuf/timestamp.proto"],
      ["eventstore/v1/eventstore.proto"],
      ["google/protobuf/timestamp.proto"],
    ]);
  });

  test("unknown names answer NOT_FOUND and the stream goes on", async () => {
    const responses = await reflect([
      { fileContainingSymbol: "eventstore.v1.NoSuchThing" },
      { fileByFilename: "no/such.proto" },
      { fileContainingExtension: { containingType: "eventstore.v1.StreamInfo", extensionNumber: 100 } },
      { allExtensionNumbersOfType: "eventstore.v1.NoSuchThing" },
      { listServices: "" },
    ]);

    expect(responses.map((response) => response.messageResponse)).toEqual([
      "errorResponse",
      "errorResponse",
      "errorResponse",
      "errorResponse",
      "listServicesResponse",
    ]);
    responses.slice(0, 4).forEach((response) => expect(response.errorResponse.errorCode).toBe(grpc.status.NOT_FOUND));
  });

  test("a message without extensions has an empty list of extension numbers", async () => {
    const [response] = await reflect([{ allExtensionNumbersOfType: "eventstore.v1.StreamInfo" }]);

    expect(response.messageResponse).toBe("allExtensionNumbersResponse");
    expect(response.allExtensionNumbersResponse).toEqual({ baseTypeName: "eventstore.v1.StreamInfo", extensionNumber: [] });
  });

  test("each response names the host and repeats the request it answers", async () => {
    const [response] = await reflect([{ host: "es.example", listServices: "" }]);

    expect(response.validHost).toBe("es.example");
    expect(response.originalRequest).toMatchObject({ host: "es.example", listServices: "" });
  });
});

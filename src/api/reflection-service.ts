import { create, toBinary, type DescFile } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb";

/**
 * Serves gRPC server reflection for the services declared in `files` (and every file they
 * import): v1, and v1alpha because older clients still ask for it. A file that `documented`
 * holds is served from there, with its source info, so that `grpcurl describe` shows the
 * proto's comments (generated code embeds its descriptors without them).
 */
export function registerReflectionService(router: ConnectRouter, files: DescFile[], documented: FileDescriptorSet = EMPTY_SET): void {
  const catalog = createCatalog(files, documented);
  router.service(v1.ServerReflection, { serverReflectionInfo: (requests) => reflect(requests, catalog) });
  router.service(v1alpha.ServerReflection, { serverReflectionInfo: (requests) => reflect(requests, catalog) });
}

// The two versions' messages differ only in their type names.
type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

interface Catalog {
  readonly services: string[];
  // The served files and everything they import, by file name.
  readonly files: Map<string, { file: DescFile; encoded: Uint8Array }>;
  readonly fileBySymbol: Map<string, DescFile>;
  // Every message type, with the files that extend it, by field number.
  readonly extensions: Map<string, Map<number, DescFile>>;
}

async function* reflect<R extends ReflectionRequest>(requests: AsyncIterable<R>, catalog: Catalog) {
  // The spec lets a server skip imports it already sent on this stream: clients keep them.
  const sent = new Set<string>();
  for await (const request of requests) {
    yield { validHost: request.host, originalRequest: request, messageResponse: answer(request, catalog, sent) };
  }
}

function answer({ messageRequest: ask }: ReflectionRequest, catalog: Catalog, sent: Set<string>) {
  const withImports = (file: DescFile | undefined) => file && fileWithImports(file, catalog, sent);
  switch (ask.case) {
    case "listServices": {
      const service = catalog.services.map((name) => ({ name }));
      return { case: "listServicesResponse", value: { service } } as const;
    }
    case "fileByFilename":
      return withImports(catalog.files.get(ask.value)?.file) ?? notFound(`file ${ask.value}`);
    case "fileContainingSymbol":
      return withImports(catalog.fileBySymbol.get(ask.value)) ?? notFound(`symbol ${ask.value}`);
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = ask.value;
      const file = catalog.extensions.get(containingType)?.get(extensionNumber);
      return withImports(file) ?? notFound(`extension ${extensionNumber} of ${containingType}`);
    }
    case "allExtensionNumbersOfType": {
      const numbers = catalog.extensions.get(ask.value)?.keys();
      if (numbers === undefined) return notFound(`message type ${ask.value}`);
      const value = { baseTypeName: ask.value, extensionNumber: [...numbers] };
      return { case: "allExtensionNumbersResponse", value } as const;
    }
    default:
      return error(Code.InvalidArgument, "the request asks nothing");
  }
}

// The asked file always, then those of its transitive imports this stream has not had yet.
function fileWithImports(file: DescFile, catalog: Catalog, sent: Set<string>) {
  const names = [file.proto.name];
  for (const name of names) {
    for (const { proto: imported } of catalog.files.get(name)!.file.dependencies) {
      if (!names.includes(imported.name) && !sent.has(imported.name)) names.push(imported.name);
    }
  }
  names.forEach((name) => sent.add(name));
  const fileDescriptorProto = names.map((name) => catalog.files.get(name)!.encoded);
  return { case: "fileDescriptorResponse", value: { fileDescriptorProto } } as const;
}

function notFound(what: string) {
  return error(Code.NotFound, `${what} not found`);
}

function error(errorCode: Code, errorMessage: string) {
  return { case: "errorResponse", value: { errorCode, errorMessage } } as const;
}

const EMPTY_SET = create(FileDescriptorSetSchema);

function createCatalog(served: DescFile[], documented: FileDescriptorSet): Catalog {
  const withSource = new Map(documented.file.map((f) => [f.name, f]));
  const files: Catalog["files"] = new Map();
  const add = (file: DescFile): void => {
    if (files.has(file.proto.name)) return;
    // fileDesc() has restored the json names and imports that generated code leaves out.
    const proto = withSource.get(file.proto.name) ?? file.proto;
    files.set(file.proto.name, { file, encoded: toBinary(FileDescriptorProtoSchema, proto) });
    file.dependencies.forEach(add);
  };
  served.forEach(add);

  const fileBySymbol = new Map<string, DescFile>();
  const extensions: Catalog["extensions"] = new Map();
  const extensionsOf = (typeName: string) =>
    extensions.get(typeName) ?? extensions.set(typeName, new Map()).get(typeName)!;
  for (const { file } of files.values()) {
    for (const symbol of symbolsOf(file)) fileBySymbol.set(symbol, file);
    for (const type of nestedTypes(file)) {
      if (type.kind === "message") extensionsOf(type.typeName);
      if (type.kind === "extension") extensionsOf(type.extendee.typeName).set(type.number, file);
    }
  }
  const services = served.flatMap((file) => file.services.map((service) => service.typeName));
  return { services, files, fileBySymbol, extensions };
}

function* symbolsOf(file: DescFile): Iterable<string> {
  for (const type of nestedTypes(file)) {
    yield type.typeName;
    switch (type.kind) {
      case "service":
        yield* type.methods.map((method) => `${type.typeName}.${method.name}`);
        break;
      case "message":
        yield* type.fields.map((field) => `${type.typeName}.${field.name}`);
        break;
      case "enum": {
        // Enum values are scoped as siblings of their enum, as in C++.
        const scope = type.parent?.typeName ?? file.proto.package;
        yield* type.values.map((value) => (scope ? `${scope}.${value.name}` : value.name));
        break;
      }
    }
  }
}

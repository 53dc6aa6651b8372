import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema, type FileDescriptorSet } from "@bufbuild/protobuf/wkt";

/**
 * The contract's file descriptors with their source info (comments): `buf build` of proto/, which
 * `npm run generate` writes next to the generated code and the build copies into dist/. Generated
 * code embeds descriptors without source info, to stay small; reflection serves these instead.
 */
export function readDocumentedDescriptors(): FileDescriptorSet {
  return fromBinary(FileDescriptorSetSchema, readFileSync(join(__dirname, "../../gen/descriptors.binpb")));
}

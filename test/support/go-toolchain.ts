import { execFile } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

// Debian's Go and its packaged gRPC and protobuf libraries, built offline in GOPATH mode (no
// module download). CI installs them (.ci/run, which sets CI=true); elsewhere the suites that
// need them are skipped with one line saying what is missing and how to install it.
const GO = "/usr/bin/go";
const PROTOC = "/usr/bin/protoc";
const PROTOC_GEN_GO = "/usr/bin/protoc-gen-go";
const PROTOC_GEN_GO_GRPC = "/usr/bin/protoc-gen-go-grpc";
const GOCODE = "/usr/share/gocode";
const NEEDED = [GO, PROTOC, PROTOC_GEN_GO, PROTOC_GEN_GO_GRPC, `${GOCODE}/src/google.golang.org/grpc`, `${GOCODE}/src/google.golang.org/genproto/googleapis/rpc/errdetails`, "/usr/include/google/protobuf/struct.proto"];
export const GO_PACKAGES = "golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev protoc-gen-go protoc-gen-go-grpc protobuf-compiler libprotobuf-dev";
const INSTALL_HINT = `apt-get install ${GO_PACKAGES} (or run bash .ci/run)`;

const PROTO_DIR = resolve(__dirname, "../../proto");
const run = promisify(execFile);

/** What is missing of the toolchain on this machine, or undefined when it is all there. */
export function missingGoToolchain(): string | undefined {
  const missing = NEEDED.filter((p) => !existsSync(p));
  return missing.length > 0 ? `missing ${missing.join(", ")}` : undefined;
}

/**
 * A describe for suites that drive a Go client: skipped, with one notice, where the toolchain is
 * missing, unless CI=true, where a missing toolchain is a failure of the suite.
 */
export function describeWithGo(name: string, suite: () => void): void {
  const missing = missingGoToolchain();
  if (missing === undefined || process.env.CI === "true") {
    describe(name, suite);
    return;
  }
  process.stderr.write(`skipping "${name}": ${missing}; to run it: ${INSTALL_HINT}\n`);
  describe.skip(`${name} (skipped: ${missing})`, suite);
}

/**
 * Generates Go code from `protoFiles` (paths under proto/) with protoc, as docs/clients.md says,
 * into a GOPATH of its own at the files' go_package import paths, and builds `program` (a main
 * package's source file) against it and Debian's libraries. Answers the executable's path.
 */
export async function buildGoClient(protoFiles: string[], program: string): Promise<{ executable: string; dir: string }> {
  const missing = missingGoToolchain();
  if (missing) throw new Error(`${missing}: ${INSTALL_HINT}`);
  const dir = mkdtempSync(join(tmpdir(), "eventstore-go-client-"));
  const src = join(dir, "gopath", "src");
  mkdirSync(src, { recursive: true });
  await run(PROTOC, [
    `--plugin=protoc-gen-go=${PROTOC_GEN_GO}`,
    `--plugin=protoc-gen-go-grpc=${PROTOC_GEN_GO_GRPC}`,
    `--go_out=${src}`,
    `--go-grpc_out=${src}`,
    "-I",
    PROTO_DIR,
    "-I",
    "/usr/include",
    ...protoFiles.map((f) => join(PROTO_DIR, f)),
  ]);
  const main = join(src, "eventstore-go-client");
  mkdirSync(main);
  copyFileSync(program, join(main, "main.go"));
  const executable = join(dir, "client");
  await run(GO, ["build", "-o", executable, "eventstore-go-client"], {
    cwd: main,
    // The build cache outlives the run: compiling grpc-go and protobuf from source takes half a
    // minute of both cores, which the suites running beside this one would otherwise pay each time.
    env: { ...process.env, GO111MODULE: "off", GOPATH: `${join(dir, "gopath")}:${GOCODE}`, GOCACHE: join(tmpdir(), "eventstore-go-build-cache"), CGO_ENABLED: "0" },
    timeout: 300_000,
  }).catch((e: { stderr?: string }) => {
    throw new Error(`go build failed:\n${e.stderr}`);
  });
  return { executable, dir };
}

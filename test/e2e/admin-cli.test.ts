import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { create, fromJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { EventStoreService, ProposedEventSchema, type RecordedEvent } from "../../gen/eventstore/v1/eventstore_pb";
import { writeAuthFile } from "../support/auth-file";
import { withoutSettings } from "../support/server-env";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// The admin commands of the eventstore binary (built, in dist/), run as an operator runs them,
// against real servers: each talks gRPC to a server like any client.

const MAIN = join(__dirname, "../../dist/src/server/main.js");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { env: { ...withoutSettings(), ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

let dir: string;
let source: TestDatabase;
let target: TestDatabase;
let secured: TestDatabase;
let server: TestServer;
let empty: TestServer;
let guarded: TestServer;
let client: Client<typeof EventStoreService>;
let key: string;
const on = (s: TestServer) => ["--server", s.url];
const lines = (text: string) => text.split("\n").filter((l) => l !== "");

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "admin-cli-"));
  [source, target, secured] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase()]);
  ({ ops: key } = writeAuthFile(join(dir, "auth.yaml"), { principals: { ops: {} }, rules: [{ principals: ["ops"], permissions: ["admin"] }] }));
  [server, empty, guarded] = await Promise.all([
    startTestServer({ kind: "postgres", url: source.url }),
    startTestServer({ kind: "postgres", url: target.url }),
    startTestServer({ kind: "postgres", url: secured.url }, {}, { authFile: join(dir, "auth.yaml") }),
  ]);
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
}, 60_000);

afterAll(async () => {
  await Promise.all([server?.stop(), empty?.stop(), guarded?.stop()]);
  await Promise.all([source?.drop(), target?.drop(), secured?.drop()]);
  rmSync(dir, { recursive: true, force: true });
});

test("append: one event with its data, metadata and id, printed as JSON; a conflict exits 1 naming its reason", async () => {
  const first = await cli(["append", "acct-1", "--type", "Opened", "--data", '{"owner":"ops"}', "--metadata", '{"by":"cli"}', "--id", "6f1e3c2a-0d1b-4c5e-9a7f-2b3c4d5e6f70", ...on(server)]);
  expect(first).toMatchObject({ code: 0, stderr: "" });
  expect(JSON.parse(first.stdout)).toMatchObject({ stream: "acct-1", positions: ["1"], eventIds: ["6f1e3c2a-0d1b-4c5e-9a7f-2b3c4d5e6f70"] });
  const second = await cli(["append", "acct-1", "--type", "Deposited", "--data", '{"amount":5}', "--expected-revision", "0", ...on(server)]);
  expect(JSON.parse(second.stdout)).toMatchObject({ revision: "1" });
  const conflict = await cli(["append", "acct-1", "--type", "Late", "--expected-revision", "0", ...on(server)]);
  expect(conflict.code).toBe(1);
  expect(conflict.stderr).toMatch(/^eventstore append: \[aborted\] Wrong expected revision: 0 \(stream acct-1, actual 1\) \(WRONG_EXPECTED_REVISION\)\n$/);
  const [event] = await firstEvents("acct-1");
  expect(event).toMatchObject({ id: "6f1e3c2a-0d1b-4c5e-9a7f-2b3c4d5e6f70", type: "Opened", contentType: "application/json", metadata: { by: "cli" } });
  expect(new TextDecoder().decode(event.payload.value as Uint8Array)).toBe('{"owner":"ops"}');
});

test("streams ls, info, delete and tombstone", async () => {
  await cli(["append", "acct-2", "--type", "Opened", ...on(server)]);
  await cli(["append", "order-1", "--type", "Placed", ...on(server)]);
  expect(lines((await cli(["streams", "ls", "--prefix", "acct-", ...on(server)])).stdout)).toEqual(["acct-1\trevision 1\tposition 2", "acct-2\trevision 0\tposition 3"]);
  expect(JSON.parse((await cli(["streams", "info", "order-1", ...on(server)])).stdout)).toMatchObject({ name: "order-1", position: "4" });
  const deleted = await cli(["streams", "delete", "acct-2", "--expected-revision", "0", ...on(server)]);
  expect(JSON.parse(deleted.stdout)).toMatchObject({ name: "acct-2", deleted: true });
  expect(lines((await cli(["streams", "ls", "--prefix", "acct-", ...on(server)])).stdout)).toEqual(["acct-1\trevision 1\tposition 2"]);
  expect(JSON.parse((await cli(["streams", "tombstone", "order-1", ...on(server)])).stdout)).toMatchObject({ name: "order-1", deleted: true });
  const refused = await cli(["append", "order-1", "--type", "Placed", ...on(server)]);
  expect(refused.code).toBe(1);
  expect(refused.stderr).toContain("STREAM_TOMBSTONED");
});

test("projections ls, info, stop, reset and delete set what the runner obeys; stop asks only a running one", async () => {
  await server.store.projections.create({ name: "balances", initialState: new TextEncoder().encode("{}"), stateContentType: "application/json", status: "running" });
  expect(lines((await cli(["projections", "ls", ...on(server)])).stdout)).toEqual(["balances\trunning\tposition 0\tversion 1"]);
  expect(JSON.parse((await cli(["projections", "stop", "balances", ...on(server)])).stdout)).toMatchObject({ name: "balances", status: "PROJECTION_STATUS_STOPPING" });
  const again = await cli(["projections", "stop", "balances", ...on(server)]);
  expect(again.code).toBe(1);
  expect(again.stderr).toContain("WRONG_EXPECTED_STATUS");
  expect(JSON.parse((await cli(["projections", "reset", "balances", ...on(server)])).stdout)).toMatchObject({ status: "PROJECTION_STATUS_RESETTING" });
  expect(JSON.parse((await cli(["projections", "info", "balances", ...on(server)])).stdout)).toMatchObject({ name: "balances", status: "PROJECTION_STATUS_RESETTING", stateContentType: "application/json" });
  expect(JSON.parse((await cli(["projections", "delete", "balances", ...on(server)])).stdout)).toMatchObject({ status: "PROJECTION_STATUS_DELETING" });
  const missing = await cli(["projections", "info", "nope", ...on(server)]);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain("[not_found]");
});

test("tail: events as they are appended, one line each, without colour off a terminal; --json lines are proto JSON", async () => {
  const child = spawn(process.execPath, [MAIN, "tail", "--category", "live", "--count", "2", ...on(server)], { env: withoutSettings(), stdio: ["ignore", "pipe", "pipe"] });
  const seen: string[] = [];
  const done = new Promise<number | null>((resolve) => child.once("exit", resolve));
  createInterface({ input: child.stdout }).on("line", (l) => seen.push(l));
  // The subscription starts at the end: appended after it is open.
  await new Promise((r) => setTimeout(r, 1500));
  await client.append({ stream: "live-1", events: [{ type: "Started", payload: { case: "data", value: new TextEncoder().encode('{"a":1}') } }] });
  await client.append({ stream: "other-1", events: [{ type: "Ignored" }] });
  await client.append({ stream: "live-2", events: [{ type: "Stopped" }] });
  expect(await done).toBe(0);
  expect(seen).toEqual([expect.stringMatching(/^ +\d+ live-1@0 Started \{"a":1\}$/), expect.stringMatching(/^ +\d+ live-2@0 Stopped $/)]);

  const json = await cli(["tail", "live-1", "--from", "start", "--count", "1", "--json", ...on(server)]);
  expect(JSON.parse(json.stdout)).toMatchObject({ stream: "live-1", type: "Started", data: Buffer.from('{"a":1}').toString("base64") });
});

test("export then import into an empty database reproduces the log: ids, streams, revisions, types, data, metadata; a second import changes nothing", async () => {
  // Interleaved streams, a batch of several events, binary data and a JSON payload.
  await client.append({ stream: "bin-1", events: [{ type: "Blob", contentType: "application/octet-stream", payload: { case: "data", value: new Uint8Array([0, 255, 10, 13]) } }] });
  await client.append({ stream: "acct-1", events: [1, 2, 3].map((n) => create(ProposedEventSchema, { type: "Deposited", payload: { case: "json", value: fromJson(ValueSchema, { amount: n }) }, metadata: { n } })) });
  await client.append({ stream: "bin-1", events: [{ type: "Blob", contentType: "application/octet-stream", payload: { case: "data", value: new Uint8Array([1]) } }] });
  const file = join(dir, "log.ndjson");
  const exported = await cli(["export", "--output", file, ...on(server)]);
  expect(exported.code).toBe(0);
  expect(exported.stderr).toMatch(/^exported \d+ events \[#{20}\] \(100\.0%\), \d+ events\/s, last position \d+\n$/);
  const original = lines(readFileSync(file, "utf8")).map((l) => JSON.parse(l) as Record<string, unknown>);
  expect(original.length).toBeGreaterThanOrEqual(10);

  const imported = await cli(["import", file, "--batch-events", "2", ...on(empty)]);
  expect(imported).toMatchObject({ code: 0 });
  expect(imported.stderr).toContain(`imported ${original.length} events`);
  const again = await cli(["import", file, ...on(empty)]);
  expect(again.code).toBe(0);

  const copy = lines((await cli(["export", ...on(empty)])).stdout).map((l) => JSON.parse(l) as Record<string, unknown>);
  const essence = ({ id, stream, revision, type, contentType, data, metadata }: Record<string, unknown>) => ({ id, stream, revision, type, contentType, data, metadata });
  expect(copy.map(essence)).toEqual(original.map(essence));
});

test("an import of large events splits its appends by bytes, under the server's max-append-bytes", async () => {
  const big = new Uint8Array(60 * 1024).fill(97);
  for (let i = 0; i < 3; i++) await client.append({ stream: "big-1", events: Array.from({ length: 100 }, () => ({ type: "Blob", contentType: "text/plain", payload: { case: "data" as const, value: big } })) });
  const file = join(dir, "big.ndjson");
  expect((await cli(["export", "--prefix", "big-", "--output", file, ...on(server)])).code).toBe(0);
  const run = await cli(["import", file, ...on(empty)]);
  expect(run).toMatchObject({ code: 0 });
  expect(run.stderr).toContain("imported 300 events");
  expect(JSON.parse((await cli(["streams", "info", "big-1", ...on(empty)])).stdout)).toMatchObject({ revision: "299" });
});

test("tail shows an event's control characters escaped, never raw to the terminal", async () => {
  await client.append({ stream: "esc-1", events: [{ type: "Evil\u001b]0;pwned\u0007", payload: { case: "data", value: new TextEncoder().encode("a\u009bb") } }] });
  const run = await cli(["tail", "esc-1", "--from", "start", "--count", "1", ...on(server)]);
  expect(run.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  expect(run.stdout).toContain("Evil\\u001b]0;pwned\\u0007");
});

test("a token is not sent in clear text to another host; an output file that cannot be written is a usage error", async () => {
  const plain = await cli(["streams", "ls", "--token", "secret", "--server", "http://192.0.2.1:50051"]);
  expect(plain.code).toBe(2);
  expect(plain.stderr).toContain("clear text");
  const badUrl = await cli(["streams", "ls", "--server", "not a url"]);
  expect(badUrl.code).toBe(2);
  const badFile = await cli(["export", "--output", "/nonexistent-dir/x.ndjson", ...on(server)]);
  expect(badFile.code).toBe(2);
  expect(badFile.stderr).toContain("--output /nonexistent-dir/x.ndjson");
  expect((await cli(["projections", "constructor", "x", ...on(server)])).code).toBe(2);
});

test("the token flag or EVENTSTORE_TOKEN authenticates; without one the server's refusal is the exit", async () => {
  const anonymous = await cli(["streams", "ls", ...on(guarded)]);
  expect(anonymous.code).toBe(1);
  expect(anonymous.stderr).toMatch(/\[unauthenticated\]/);
  expect((await cli(["append", "acct-9", "--type", "Opened", "--token", key, ...on(guarded)])).code).toBe(0);
  expect(lines((await cli(["streams", "ls"], { EVENTSTORE_TOKEN: key, EVENTSTORE_URL: guarded.url })).stdout)).toEqual(["acct-9\trevision 0\tposition 1"]);
});

test("--help on each command, and usage mistakes exit 2 with the command's usage", async () => {
  for (const command of ["streams", "projections", "append", "tail", "export", "import"]) {
    const help = await cli([command, "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(new RegExp(`^Usage: eventstore ${command}`));
    expect(help.stdout).toContain("--server URL");
  }
  for (const [args, message] of [
    [["streams", "bogus"], "unknown streams command: bogus"],
    [["append", "acct-1"], "--type is required"],
    [["tail", "--from", "yesterday"], "--from must be start, end or a position"],
    [["export", "--type", "X"], "export takes no --type"],
    [["append", "acct-1", "--type", "T", "--metadata", "[1]"], "--metadata must be a JSON object"],
  ] as const) {
    const run = await cli([...args, ...on(server)]);
    expect({ args, code: run.code }).toEqual({ args, code: 2 });
    expect(run.stderr).toContain(message);
    expect(run.stderr).toContain("Usage: eventstore");
  }
  expect((await cli(["--help"])).stdout).toContain("tail       a live view");
});

async function firstEvents(stream: string): Promise<RecordedEvent[]> {
  for await (const page of client.readStream({ stream, limit: 1n })) return page.events;
  return [];
}

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// The client package as a service gets it: `npm pack` of packages/client, installed into an
// empty project, with none of the server's dependencies, then used from CommonJS and, running
// the README's client snippet word for word (but for the server's address), from an ES module.

const run = promisify(execFile);
const ROOT = resolve(__dirname, "../..");

/** The README's TypeScript snippet under a heading, as JavaScript an ES module can run. */
function readmeSnippet(heading: string): string {
  const text = readFileSync(join(ROOT, "README.md"), "utf8");
  const section = text.slice(text.indexOf(`\n## ${heading}\n`));
  const code = section.slice(section.indexOf("```ts\n") + 6, section.indexOf("\n```", section.indexOf("```ts\n")));
  return ts.transpileModule(code, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 } }).outputText;
}

/** Runs a node script in `cwd` until `done` appears in its output (or it exits), then stops it. */
function runUntil(cwd: string, file: string, done: string, timeoutMs = 30_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [file], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.stdout.on("data", (d) => {
      out += d;
      if (out.includes(done)) child.kill("SIGTERM");
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("exit", () => {
      clearTimeout(timer);
      if (out.includes(done)) resolvePromise(out);
      else reject(new Error(`${file} ended without printing ${done}\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
}

describe("the client package, packed and installed into an empty project", () => {
  let dir: string;
  let app: string;
  let db: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "eventstore-client-package-"));
    await run("npm", ["pack", "--workspace", "@pg-eventstore/client", "--pack-destination", dir], { cwd: ROOT, timeout: 120_000 });
    const [tarball] = readdirSync(dir).filter((f) => f.endsWith(".tgz"));
    app = join(dir, "app");
    await run("mkdir", [app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", version: "1.0.0", private: true }));
    // From npm's cache, which the repository's own install filled: no network needed.
    await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", join(dir, tarball)], { cwd: app, timeout: 180_000 });
    db = await createTestDatabase();
    server = await startTestServer({ kind: "postgres", url: db.url });
  }, 300_000);

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("brings the SDK and the generated code, and none of the server's dependencies", () => {
    const installed = readdirSync(join(app, "node_modules"));
    expect(installed).toEqual(expect.arrayContaining(["@pg-eventstore", "@bufbuild", "@connectrpc"]));
    for (const serverOnly of ["postgres", "@electric-sql", "jose", "re2js", "yaml", "ulid"]) expect(installed).not.toContain(serverOnly);
    const files = readdirSync(join(app, "node_modules/@pg-eventstore/client/dist/gen/eventstore/v1"));
    expect(files).toEqual(expect.arrayContaining(["eventstore_pb.js", "eventstore_pb.d.ts"]));
  });

  test("works from CommonJS", async () => {
    writeFileSync(
      join(app, "main.cjs"),
      `const { createEventStoreClient, jsonData } = require("@pg-eventstore/client");
      (async () => {
        const client = createEventStoreClient({ url: ${JSON.stringify(server.url)} });
        await client.append("cjs-1", [{ type: "Said", data: { text: "from require" } }]);
        for await (const e of client.readStream("cjs-1")) console.log(JSON.stringify({ type: e.type, data: jsonData(e) }));
        client.close();
      })();`,
    );
    const { stdout } = await run(process.execPath, ["main.cjs"], { cwd: app, timeout: 30_000 });
    expect(JSON.parse(stdout.trim())).toEqual({ type: "Said", data: { text: "from require" } });
  });

  test("runs the README's client snippet from an ES module", async () => {
    writeFileSync(join(app, "snippet.mjs"), readmeSnippet("A TypeScript client").replaceAll("http://localhost:50051", server.url));
    // Its last part follows the log live, for ever: stopped once the conflict is printed.
    const out = await runUntil(app, "snippet.mjs", "account-42 7 0n"); // as the README says it prints
    expect(out).toContain("0n AccountOpened { owner: 'ann' }");
  });
});

import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// The README's grpcurl sessions, word for word, against a real server with a real grpcurl: the
// commands are read from the README itself, and what each prints must agree with the output the
// README shows for it (every service listed, every line of a describe, every field value that
// is not an id or a time). Skipped, with a notice, where no grpcurl exists (a user's machine has
// no ../shared): CI has one.

const run = promisify(execFile);
const README = resolve(__dirname, "../../README.md");
const GRPCURL = [resolve(__dirname, "../../../shared/tools/grpcurl/grpcurl"), ...(process.env.PATH ?? "").split(":").map((d) => join(d, "grpcurl"))].find((p) => existsSync(p));

interface Step {
  command: string;
  /** What the README shows after the command. */
  shown: string;
}

/** The `$ grpcurl ...` commands of a README section's sh blocks, each with the output shown after it. */
function sessionSteps(section: string): Step[] {
  const text = readFileSync(README, "utf8");
  const start = text.indexOf(`\n## ${section}\n`);
  const body = text.slice(start + 1, text.indexOf("\n## ", start + 1));
  const steps: Step[] = [];
  for (const block of body.split("```sh\n").slice(1).map((b) => b.slice(0, b.indexOf("```")))) {
    const lines = block.split("\n");
    for (let i = 0; i < lines.length; i++) {
      if (!lines[i].startsWith("$ grpcurl")) continue;
      let command = lines[i].slice(2);
      // The command goes on while a quote is open or a line ends with a backslash.
      while ((command.split("'").length % 2 === 0 || command.endsWith("\\")) && i + 1 < lines.length) command += "\n" + lines[++i];
      const shown: string[] = [];
      while (i + 1 < lines.length && !lines[i + 1].startsWith("$ ") && !lines[i + 1].startsWith("# ")) shown.push(lines[++i]);
      steps.push({ command, shown: shown.join("\n").trim() });
    }
  }
  return steps;
}

/** The `"key": value` pairs a README output shows, but for ids, times and abridged values. */
function shownFields(shown: string): [string, string][] {
  const pairs = [...shown.matchAll(/"(\w+)": ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false)/g)].map((m) => [m[1], m[2]] as [string, string]);
  const varies = (key: string, value: string) =>
    value.includes("...") || /^(id|eventIds|subscriptionId|committedAt|storedAt|time)$/.test(key) || /\d{4}-\d\d-\d\dT/.test(value) || /^"[0-9a-f]{8}-/.test(value);
  return pairs.filter(([k, v]) => !varies(k, v));
}

/** Every `"key": value` pair in grpcurl's output (its JSON, pretty-printed, one message after another). */
function outputFields(output: string): Set<string> {
  return new Set([...output.matchAll(/"(\w+)": ("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|true|false)/g)].map((m) => `${m[1]}: ${m[2]}`));
}

const describeWithGrpcurl = GRPCURL ? describe : describe.skip;
if (!GRPCURL) process.stderr.write("skipping the README's grpcurl sessions: no grpcurl (../shared/tools/grpcurl/grpcurl or on PATH)\n");

describeWithGrpcurl("the README's grpcurl sessions, with a real grpcurl", () => {
  let db: TestDatabase;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startTestServer({ kind: "postgres", url: db.url });
  });

  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  /** Runs a README command as a shell would, with our grpcurl and server. */
  async function grpcurl(command: string, maxTimeS?: number): Promise<{ stdout: string; stderr: string; code: number }> {
    let line = command.replace(/^grpcurl /, `'${GRPCURL}' `).replaceAll("localhost:50051", `127.0.0.1:${server.port}`);
    if (maxTimeS !== undefined) line = line.replace(`'${GRPCURL}' `, `'${GRPCURL}' -max-time ${maxTimeS} `);
    try {
      const { stdout, stderr } = await run("bash", ["-c", line], { timeout: 30_000 });
      return { stdout, stderr, code: 0 };
    } catch (e) {
      const err = e as { stdout: string; stderr: string; code: number };
      return { stdout: err.stdout, stderr: err.stderr, code: err.code };
    }
  }

  it("the session runs word for word and prints what the README shows", async () => {
    const steps = sessionSteps("A grpcurl session");
    expect(steps.length).toBeGreaterThanOrEqual(6);
    for (const step of steps) {
      const got = await grpcurl(step.command);
      const context = `${step.command}\n--- printed ---\n${got.stdout}${got.stderr}`;
      if (step.command.includes(" list")) {
        // Every service, exactly.
        expect({ context, services: got.stdout.trim().split("\n") }).toEqual({ context, services: step.shown.split("\n") });
      } else if (step.command.includes(" describe ")) {
        for (const line of step.shown.split("\n")) expect({ context, has: got.stdout.includes(line) }).toEqual({ context, has: true });
      } else if (step.shown.startsWith("ERROR:")) {
        // An error as grpcurl prints it, with its ErrorInfo decoded.
        expect({ context, code: got.code }).not.toEqual({ context, code: 0 });
        for (const line of step.shown.split("\n")) expect({ context, has: got.stderr.includes(line.trim()) }).toEqual({ context, has: true });
      } else {
        expect({ context, code: got.code }).toEqual({ context, code: 0 });
        const fields = outputFields(got.stdout);
        for (const [key, value] of shownFields(step.shown)) expect({ context, field: `${key}: ${value}`, printed: fields.has(`${key}: ${value}`) }).toEqual({ context, field: `${key}: ${value}`, printed: true });
      }
    }
  }, 120_000);

  it("describe shows the proto's comments", async () => {
    const got = await grpcurl("grpcurl -plaintext localhost:50051 describe eventstore.v1.EventStoreService");
    expect(got.stdout).toContain("// EventStoreService appends events to streams and reads them back.");
    const message = await grpcurl("grpcurl -plaintext localhost:50051 describe eventstore.v1.CaughtUp");
    expect(message.stdout).toContain("Resuming");
  });

  it("the subscription runs word for word and prints what the README shows, until its deadline", async () => {
    const [step] = sessionSteps("Subscribing");
    expect(step.command).toContain("Subscribe");
    await server.store.append([{ stream: "order-42", expected: "any", events: [{ id: crypto.randomUUID(), type: "OrderPlaced", contentType: "application/json", data: Buffer.from('{"total":12.5}'), metadata: {} }] }]);
    // "with a second append made while it runs"
    const second = new Promise((r) => setTimeout(r, 1000)).then(() =>
      server.store.append([{ stream: "order-43", expected: "any", events: [{ id: crypto.randomUUID(), type: "OrderPlaced", contentType: "application/json", data: Buffer.from('{"total":3}'), metadata: {} }] }]),
    );
    const got = await grpcurl(step.command, 2);
    await second;
    expect(got.stderr).toContain("DeadlineExceeded");
    const fields = outputFields(got.stdout);
    for (const [key, value] of shownFields(step.shown).filter(([k]) => k !== "position")) expect({ field: `${key}: ${value}`, printed: fields.has(`${key}: ${value}`) }).toEqual({ field: `${key}: ${value}`, printed: true });
    expect(got.stdout).toContain('"caughtUp"');
  });
});

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

/**
 * No Docker engine runs here, so this test does what the Dockerfile's runtime stage does, in a
 * temporary directory: the same production-only install (the command is read from the
 * Dockerfile), the built dist/, the same CMD and environment, an unprivileged user when the test
 * runs as root, and a data directory standing in for the /data volume. The first part pins the
 * Dockerfile's text so that it cannot drift from what is tested here.
 */

const ROOT = resolve(__dirname, "../..");
const run = promisify(execFile);
const INSTALL_TIMEOUT_MS = 10 * 60_000;
const NOBODY = 65534;

const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
const stages = dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith("FROM "));
const buildStage = stages.find((s) => /^FROM \S+ AS build$/m.test(s)) ?? "";
const runtimeStage = stages.at(-1) ?? "";

describe("the Dockerfile", () => {
  test("builds on node:20-bookworm-slim in two stages", () => {
    expect(stages.map((s) => s.split("\n")[0])).toEqual(["FROM node:20-bookworm-slim AS build", "FROM node:20-bookworm-slim AS runtime"]);
  });

  test("installs every dependency and builds in the build stage, with npm install rather than npm ci", () => {
    expect(buildStage).toMatch(/^RUN npm install --no-audit --no-fund$/m);
    expect(buildStage).toMatch(/^RUN npm run build$/m);
    expect(dockerfile).not.toMatch(/^RUN .*\bnpm ci\b/m);
  });

  test("installs production dependencies only in the runtime stage, and copies the built dist/", () => {
    expect(runtimeStage).toMatch(/^RUN npm install --omit=dev\b/m);
    expect(runtimeStage).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(runtimeStage).not.toMatch(/^COPY \. /m);
  });

  test("runs as the node user on port 50051 with its data on a /data volume the node user owns", () => {
    expect(runtimeStage).toMatch(/^RUN mkdir -p \/data && chown node:node \/data$/m);
    expect(runtimeStage).toMatch(/^USER node$/m);
    expect(runtimeStage).toMatch(/^ENV PORT=50051\b/m);
    expect(runtimeStage).toMatch(/DATA_DIR=\/data$/m);
    expect(runtimeStage).toMatch(/^VOLUME \["\/data"\]$/m);
    expect(runtimeStage).toMatch(/^EXPOSE 50051$/m);
    expect(runtimeStage).not.toMatch(/DATABASE_URL=/);
    // It listens beyond loopback, so it must be given authentication or told INSECURE=true.
    expect(runtimeStage).toMatch(/^\s+HOST=0\.0\.0\.0 \\$/m);
    expect(runtimeStage).toMatch(/^\s+INSECURE=false \\$/m);
    expect(cmd()).toEqual(["node", "--max-semi-space-size=32", "dist/src/server/main.js", "serve"]);
    // USER must come before CMD, and the volume's owner must be set before it is declared.
    expect(runtimeStage.indexOf("USER node")).toBeLessThan(runtimeStage.indexOf("CMD "));
    expect(runtimeStage.indexOf("chown node:node /data")).toBeLessThan(runtimeStage.indexOf("VOLUME "));
  });
});

describe("the runtime stage, outside Docker", () => {
  let dir: string;
  let app: string;
  let data: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "eventstore-image-"));
    app = join(dir, "app");
    data = join(dir, "data");
    mkdirSync(app);
    mkdirSync(data);
    for (const file of ["package.json", "package-lock.json"]) cpSync(join(ROOT, file), join(app, file));
    const [npm, ...args] = productionInstall();
    await run(npm, args, { cwd: app, timeout: INSTALL_TIMEOUT_MS, env: { ...process.env, NODE_ENV: "production" } }).catch(
      (e: { stderr?: string }) => {
        throw new Error(`${productionInstall().join(" ")} failed:\n${e.stderr}`);
      },
    );
    cpSync(join(ROOT, "dist"), join(app, "dist"), { recursive: true });
    if (process.getuid?.() === 0) {
      // As in the image: the app belongs to root and is only readable; /data belongs to the user.
      chmodSync(dir, 0o755);
      chmodSync(app, 0o755);
      chownSync(data, NOBODY, NOBODY);
    }
  }, INSTALL_TIMEOUT_MS + 60_000);

  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("has the production dependencies and not the development ones", () => {
    for (const dep of Object.keys(packageJson().dependencies)) expect(existsSync(join(app, "node_modules", dep))).toBe(true);
    for (const dep of Object.keys(packageJson().devDependencies)) expect(existsSync(join(app, "node_modules", dep))).toBe(false);
    expect(existsSync(join(app, "dist/src/store/postgres/migrations"))).toBe(true);
  });

  test(
    "serves Connect JSON over HTTP/1.1 and keeps its events in the data directory across restarts",
    async () => {
      const first = await startServer();
      const appended = await append(first.port, { stream: "a-1", events: [{ type: "T", json: { x: 1 } }] });
      expect(appended.status).toBe(200);
      expect(appended.body).toMatchObject({ stream: "a-1", positions: [expect.stringMatching(/^\d+$/)] });
      expect(await first.stop()).toEqual({ code: 0, signal: null });

      const second = await startServer();
      const again = await append(second.port, { stream: "a-1", expectedRevision: "0", events: [{ type: "T", json: { x: 2 } }] });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ stream: "a-1", revision: "1" });
      expect(BigInt((again.body.positions as string[])[0])).toBeGreaterThan(BigInt((appended.body.positions as string[])[0]));
      expect(await second.stop()).toEqual({ code: 0, signal: null });
    },
    120_000,
  );

  test("refuses to start on 0.0.0.0 without an auth file or INSECURE=true, saying which to give", async () => {
    const [node, ...args] = cmd();
    const child = spawn(node === "node" ? process.execPath : node, args, {
      cwd: app,
      env: { PATH: process.env.PATH, NODE_ENV: "production", HOST: "0.0.0.0", INSECURE: "false", PORT: "0", DATA_DIR: data },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const code = await new Promise((done) => child.once("exit", done));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--auth-file \(AUTH_FILE\).*--insecure \(INSECURE=true\)/s);
  });

  /** Starts the image's CMD with the image's environment, on a free port; resolves when ready. */
  async function startServer(): Promise<{ port: number; stop(): Promise<{ code: number | null; signal: string | null }> }> {
    const [node, ...args] = cmd();
    const asRoot = process.getuid?.() === 0;
    const child = spawn(node === "node" ? process.execPath : node, args, {
      cwd: app,
      // Only what the image sets: nothing of this test's NODE_OPTIONS, NODE_PATH or DATABASE_URL.
      env: { PATH: process.env.PATH, NODE_ENV: "production", HOST: "127.0.0.1", PORT: "0", DATA_DIR: data },
      stdio: ["ignore", "pipe", "pipe"],
      ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    });
    children.push(child);
    const exited = new Promise<{ code: number | null; signal: string | null }>((done) =>
      child.once("exit", (code, signal) => done({ code, signal })),
    );
    let stderr = "";
    child.stderr!.on("data", (chunk) => (stderr += chunk));
    const port = await new Promise<number>((ready, fail) => {
      const timer = setTimeout(() => fail(new Error(`no "ready" line within 60s; stderr:\n${stderr}`)), 60_000);
      createInterface({ input: child.stdout! }).on("line", (line) => {
        const entry = parseJson(line);
        if (entry?.msg === "ready") {
          clearTimeout(timer);
          ready(Number(entry.port));
        }
      });
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        fail(new Error(`the server exited (${code ?? signal}) before it was ready; stderr:\n${stderr}`));
      });
    });
    return {
      port,
      stop() {
        child.kill("SIGTERM");
        return exited;
      },
    };
  }
});

async function append(port: number, request: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`http://127.0.0.1:${port}/eventstore.v1.EventStoreService/Append`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** The runtime stage's install command, as the Dockerfile spells it (without the cache clean). */
function productionInstall(): string[] {
  const line = /^RUN (npm install --omit=dev[^&\n]*)/m.exec(runtimeStage);
  if (!line) throw new Error("the Dockerfile's runtime stage has no `RUN npm install --omit=dev` line");
  return line[1].trim().split(/\s+/);
}

function cmd(): string[] {
  const line = /^CMD (\[.*\])$/m.exec(runtimeStage);
  if (!line) throw new Error("the Dockerfile's runtime stage has no exec-form CMD");
  return JSON.parse(line[1]) as string[];
}

function packageJson(): { dependencies: Record<string, string>; devDependencies: Record<string, string> } {
  return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

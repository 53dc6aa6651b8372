import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

export interface ServerProcess {
  pid: number;
  /** http://127.0.0.1:PORT */
  url: string;
  /** Resident memory now, in MiB (VmRSS). */
  rssMb(): number;
  stop(): Promise<void>;
}

export interface ServerProcessOptions {
  databaseUrl: string;
  /** More environment for the server (DB_POOL_SIZE, ...). */
  env?: Record<string, string>;
  readyTimeoutMs?: number;
  /** Options for node itself, before the script (`--cpu-prof`, ...). */
  nodeArgs?: string[];
}

/**
 * The built server (dist/src/server/main.js) as a process of its own, so that it does not share
 * an event loop with the benchmark's clients. Its port is the one it reports in its "ready" log
 * line; the warnings and errors it logs are passed on to our stderr.
 */
/** Node's flags for the server, as `npm start` and the Dockerfile run it. */
const SERVER_NODE_ARGS = ["--max-semi-space-size=32"];

export async function startServerProcess(options: ServerProcessOptions): Promise<ServerProcess> {
  const main = join(__dirname, "..", "src", "server", "main.js");
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, ...(options.nodeArgs ?? []), main, "serve"], {
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: "0",
      DATABASE_URL: options.databaseUrl,
      // "ready" is an info line; so is each call's, as in production (LOG_LEVEL=warn drops them).
      LOG_LEVEL: "info",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const state = { stopping: false };
  const port = await waitForReady(child, options.readyTimeoutMs ?? 30_000, state);
  const pid = child.pid as number;
  const exited = new Promise<void>((resolve) =>
    child.once("exit", (code, signal) => {
      if (!state.stopping) process.stderr.write(`bench: the server (pid ${pid}) exited unexpectedly: code ${code}, signal ${signal}\n`);
      resolve();
    }),
  );
  return {
    pid,
    url: `http://127.0.0.1:${port}`,
    rssMb: () => readRssMb(pid),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      state.stopping = true;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Answers the port of the "ready" line. Passes on to stderr the lines before it that are not
 * info, and every line after it until we stop the server.
 */
function waitForReady(child: ChildProcess, timeoutMs: number, state: { stopping: boolean }): Promise<number> {
  return new Promise((resolve, reject) => {
    let ready = false;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the server did not log "ready" within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(timer);
      reject(new Error(`the server exited before it was ready (code ${code}, signal ${signal})`));
    };
    child.once("exit", onExit);
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      // A call's line, one per call at info: read and dropped without parsing.
      if (ready && line.startsWith(CALL_LINE_START) && line.includes(CALL_LINE)) return;
      let entry: { msg?: string; level?: string; port?: number } = {};
      try {
        entry = JSON.parse(line);
      } catch {
        // not a log line: show it as it is
      }
      if (!ready && entry.msg === "ready" && typeof entry.port === "number") {
        ready = true;
        clearTimeout(timer);
        child.off("exit", onExit);
        resolve(entry.port);
      } else if ((ready && !state.stopping && entry.level !== "info") || (!ready && entry.level !== "info")) {
        process.stderr.write(`[server] ${line}\n`);
      }
    });
  });
}

function readRssMb(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

const CALL_LINE_START = '{"time":';
const CALL_LINE = '"level":"info","msg":"call"';

/** utime + stime of /proc/PID/stat, in clock ticks of 1/100 s (USER_HZ on Linux). */
export function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The fields after the command name, which may hold spaces, start with the state (field 3).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

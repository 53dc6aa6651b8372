import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

export interface ExampleProcess {
  child: ChildProcess;
  /** Every stdout line so far, parsed when it is JSON. */
  lines: unknown[];
  /** Everything written to stdout so far. */
  stdout(): string;
  stderr(): string;
  /** The first line (so far or to come) that passes `test`. */
  line<T = any>(test: (line: any) => boolean, ms?: number): Promise<T>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const EXAMPLES = join(__dirname, "../../dist/examples/bank-account");

/** One of the built example's scripts (dist/, made by the global setup) as a child process. */
export function startExample(script: string, args: string[], env: Record<string, string>): ExampleProcess {
  const child = spawn(process.execPath, [join(EXAMPLES, `${script}.js`), ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: unknown[] = [];
  const waiters: { test: (line: any) => boolean; resolve: (line: any) => void }[] = [];
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (d) => (stderr += d));
  child.stdout!.on("data", (d) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? -1 : null))));
  createInterface({ input: child.stdout! }).on("line", (text) => {
    let line: unknown = text;
    try {
      line = JSON.parse(text);
    } catch {
      // a plain line
    }
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  return {
    child,
    lines,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    line(test, ms = 30_000) {
      const found = lines.find(test);
      if (found !== undefined) return Promise.resolve(found as any);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no such line in ${ms} ms; got ${JSON.stringify(lines)}; stderr ${stderr}`)), ms);
        waiters.push({
          test,
          resolve: (line) => {
            clearTimeout(timer);
            resolve(line);
          },
        });
      });
    },
    async kill(signal = "SIGTERM") {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill(signal);
      return exited;
    },
  };
}

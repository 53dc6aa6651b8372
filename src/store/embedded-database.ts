import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { lockDataDir } from "./data-dir-lock";

export interface EmbeddedDatabase {
  /** The Unix socket postgres.js connects to. */
  socketPath: string;
  stop(): Promise<void>;
}

/**
 * Starts PGlite (PostgreSQL compiled to WebAssembly) in this process and serves it on a private
 * Unix socket, so the store talks to it with the same driver and SQL as to a real PostgreSQL.
 * PGlite runs one query at a time: one connection is all it can use.
 */
export async function startEmbeddedDatabase(dataDir: string | "memory"): Promise<EmbeddedDatabase> {
  let unlock = () => {};
  if (dataDir !== "memory") {
    mkdirSync(dataDir, { recursive: true });
    unlock = lockDataDir(dataDir);
  }
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir === "memory" ? undefined : dataDir);
  } catch (e) {
    unlock();
    throw e;
  }
  const socketDir = mkdtempSync(join(tmpdir(), "eventstore-"));
  const socketPath = join(socketDir, ".s.PGSQL.5432");
  const server = new PGLiteSocketServer({ db, path: socketPath, maxConnections: 4 });
  await server.start();
  return {
    socketPath,
    async stop() {
      await server.stop();
      await db.close();
      rmSync(socketDir, { recursive: true, force: true });
      unlock();
    },
  };
}

import { execFile } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function run(cmd: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd[0], cmd.slice(1), (error, stdout, stderr) =>
      error ? reject(new Error(`${cmd.join(" ")} failed: ${stderr || error.message}`)) : resolve(stdout),
    ),
  );
}

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Cluster {
  url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** A PostgreSQL cluster of the caller's own, to restart or to fill with roles (the shared one must not be restarted under other tests). */
export async function startThrowawayCluster(): Promise<Cluster> {
  const root = "/usr/lib/postgresql";
  const bin = existsSync(root)
    ? readdirSync(root)
        .sort((a, b) => Number(b) - Number(a))
        .map((v) => join(root, v, "bin"))
        .find((b) => existsSync(join(b, "initdb")) && existsSync(join(b, "pg_ctl")))
    : undefined;
  if (!bin) {
    throw new Error(
      `A test with a PostgreSQL cluster of its own needs initdb and pg_ctl (searched ${root}/*/bin): ` +
        "install the PostgreSQL server package (e.g. apt-get install postgresql).",
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "eventstore-faults-pg-"));
  const asPostgres = process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--"] : [];
  if (asPostgres.length) chownSync(dir, Number((await run(["id", "-u", "postgres"])).trim()), Number((await run(["id", "-g", "postgres"])).trim()));
  const data = join(dir, "data");
  const log = join(dir, "log");
  await run([...asPostgres, join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const ctl = (...args: string[]) =>
    run([...asPostgres, join(bin, "pg_ctl"), "-D", data, "-l", log, "-w", "-t", "30", ...args]).catch((e: Error) => {
      const tail = existsSync(log) ? readFileSync(log, "utf8").split("\n").slice(-20).join("\n") : "";
      throw new Error(`${e.message}\n${tail}`);
    });
  await ctl("-o", options, "start");
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => void (await ctl("-m", "fast", "stop")),
    start: async () => void (await ctl("-o", options, "start")),
    async destroy() {
      await ctl("-m", "immediate", "stop").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

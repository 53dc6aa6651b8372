import { spawn } from "node:child_process";
import { setPriority } from "node:os";

/**
 * The CPU priority attackers run at (nice 10): standing in for machines of their own. On this
 * project's 2-core machine the attacker, the server, PostgreSQL and the probe share the cores,
 * and an attacker's own work (grpc-js pushing 5,000 calls, or writing to 10,000 sockets) would
 * otherwise be taken from the server and the probe: what the probe then sees says more about
 * the attacker's CPU than about the server.
 */
export const ATTACKER_NICE = 10;

/** Runs `script` (CommonJS, from the repository's root) in a node process of its own at ATTACKER_NICE; answers its stdout. */
export function runAttacker(script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    if (child.pid !== undefined) setPriority(child.pid, ATTACKER_NICE);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`the attacker exited with ${code}`))));
  });
}

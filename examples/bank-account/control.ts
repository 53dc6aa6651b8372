/**
 * Controls a running projection from another process, through the server only:
 *
 *   node dist/examples/bank-account/control.js stop|reset|delete|show NAME
 *
 * It sets the status (STOPPING, RESETTING or DELETING) and waits until the runner has obeyed:
 * stopped (IDLE), started again (RUNNING, from position 0 or on), or deleted (no record).
 */
import { createEventStoreClient, ProjectionNotFoundError, type ProjectionRecord } from "../../src/client";

const WANTED = { stop: "stopping", reset: "resetting", delete: "deleting" } as const;

async function main(): Promise<void> {
  const [command, name] = process.argv.slice(2);
  if (!name || !(command in WANTED || command === "show")) throw new Error("usage: control stop|reset|delete|show NAME");
  const client = createEventStoreClient({ url: process.env.EVENTSTORE_URL ?? "http://127.0.0.1:50051" });
  try {
    if (command === "show") return print(await client.projections.get(name));
    await client.projections.updateStatus(name, WANTED[command as keyof typeof WANTED]);
    const deadline = Date.now() + Number(process.env.TIMEOUT_MS ?? 30_000);
    for (;;) {
      let record: ProjectionRecord | undefined;
      try {
        record = await client.projections.get(name);
      } catch (e) {
        if (!(e instanceof ProjectionNotFoundError)) throw e;
      }
      const obeyed = command === "delete" ? record === undefined : command === "stop" ? record?.status === "idle" : record?.status === "running";
      if (obeyed) return print(record ?? { deleted: name });
      if (Date.now() > deadline) throw new Error(`the projection did not obey ${command} in time (status ${record?.status})`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    client.close();
  }
}

function print(record: ProjectionRecord | { deleted: string }): void {
  const shown = "state" in record ? { ...record, state: JSON.parse(new TextDecoder().decode(record.state)), initialState: undefined } : record;
  process.stdout.write(`${JSON.stringify(shown, (_, v) => (typeof v === "bigint" ? v.toString() : v instanceof Map ? Object.fromEntries(v) : v))}\n`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});

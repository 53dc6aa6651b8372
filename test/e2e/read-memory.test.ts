import { randomUUID } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { createGrpcJsClient } from "../support/grpc-js-client";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { createTestDatabase, type TestDatabase } from "../support/test-database";

const EVENTS = 50_000;
const EVENT_BYTES = 2048;
const MiB = 1024 * 1024;

describe("reading a large stream holds bounded memory on the server", () => {
  let db: TestDatabase;
  let server: ServerProcess;

  beforeAll(async () => {
    db = await createTestDatabase();
    server = await startServerProcess({ DATABASE_URL: db.url });
    const client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
    const data = new Uint8Array(EVENT_BYTES).fill(120);
    for (let i = 0; i < EVENTS / 1000; i++) {
      await client.append({
        stream: "big-1",
        events: Array.from({ length: 1000 }, () => ({ id: randomUUID(), type: "Filled", payload: { case: "data" as const, value: data } })),
      });
    }
  }, 120_000);
  afterAll(async () => {
    await server?.stop();
    await db?.drop();
  });

  it("a consumer that stops reading does not make the server buffer the stream; it then gets every event in order", async () => {
    const client = createGrpcJsClient(`127.0.0.1:${server.port}`);
    const before = server.rss();
    const call = (client as any).ReadStream({ stream: "big-1" });
    const revisions: number[] = [];
    let paused = false;
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (m: any) => {
        for (const e of m.events) revisions.push(Number(e.revision));
        if (!paused) {
          paused = true;
          call.pause();
        }
      });
      call.on("error", reject);
      call.on("end", resolve);
    });
    // While the consumer sleeps, the server could read ~100 MiB ahead if nothing pushed back.
    await new Promise((r) => setTimeout(r, 3000));
    const growth = server.rss() - before;
    if (process.env.SHOW_RSS) console.log(`server RSS growth while paused: ${(growth / MiB).toFixed(1)} MiB`);
    call.resume();
    await done;
    client.close();
    expect(revisions).toEqual(Array.from({ length: EVENTS }, (_, i) => i));
    expect(growth).toBeLessThan(60 * MiB);
  }, 120_000);
});

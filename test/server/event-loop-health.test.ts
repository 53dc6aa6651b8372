import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// The server runs in this process: a busy loop here stalls its event loop as a runaway request
// would, and health must say so while it lasts and take it back once it is over.

const MAX_LAG_MS = 150;

let db: TestDatabase;
let server: TestServer;
let client: grpc.Client & Record<string, Function>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url }, {}, { maxEventLoopLagMs: MAX_LAG_MS });
  const definition = protoLoader.loadSync("grpc/health/v1/health.proto", { includeDirs: [path.join(__dirname, "../../proto")], enums: String });
  const Health = (grpc.loadPackageDefinition(definition) as any).grpc.health.v1.Health;
  client = new Health(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  await db?.drop();
});

function check(): Promise<string> {
  return new Promise((resolve, reject) =>
    client.Check({ service: "" }, (error: grpc.ServiceError | null, response: { status: string }) => (error ? reject(error) : resolve(response.status))),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Keeps the event loop busy in chunks of `chunkMs`, with short breaks in which I/O is served. */
async function stall(chunks: number, chunkMs: number, inBreaks: () => void): Promise<void> {
  for (let i = 0; i < chunks; i++) {
    inBreaks();
    const until = performance.now() + chunkMs;
    while (performance.now() < until) {
      // busy: nothing else runs
    }
    await sleep(5);
  }
}

test("health answers NOT_SERVING while the event loop lags past the threshold, and SERVING once it keeps time again", async () => {
  const seen: string[] = [];
  const watch: grpc.ClientReadableStream<{ status: string }> = client.Watch({ service: "" });
  watch.on("data", (m) => seen.push(m.status));
  watch.on("error", () => {});
  expect(await check()).toBe("SERVING");
  // On time, nothing changes.
  await sleep(4 * MAX_LAG_MS);
  expect(seen).toEqual(["SERVING"]);

  const answers: Promise<string>[] = [];
  await stall(8, 2 * MAX_LAG_MS, () => answers.push(check()));

  expect(await Promise.all(answers)).toContain("NOT_SERVING");
  expect(seen).toContain("NOT_SERVING");

  const deadline = Date.now() + 5000;
  while (seen[seen.length - 1] !== "SERVING" && Date.now() < deadline) await sleep(20);
  expect(seen).toEqual(["SERVING", "NOT_SERVING", "SERVING"]);
  expect(await check()).toBe("SERVING");
  watch.cancel();
});

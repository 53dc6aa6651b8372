import { createEventStoreClient, type EventStoreClient } from "../../src/client";
import { createTestDatabase, type TestDatabase } from "./test-database";
import { startTestServer, type TestServer } from "./test-server";

export interface ClientServer {
  db: TestDatabase;
  server: TestServer;
  client: EventStoreClient;
  /** Closes the client, stops the server and drops the database. */
  close(): Promise<void>;
}

/** A database of its own, the real server on it, and an SDK client of that server. */
export async function startClientServer(): Promise<ClientServer> {
  const db = await createTestDatabase();
  const server = await startTestServer({ kind: "postgres", url: db.url });
  const client = createEventStoreClient({ url: server.url });
  return {
    db,
    server,
    client,
    async close() {
      client.close();
      await server.stop();
      await db.drop();
    },
  };
}

import { readdirSync } from "node:fs";
import { join } from "node:path";
import { openStore } from "../../src/store";
import { connect } from "../../src/store/postgres/sql";
import { createTestDatabase } from "../support/test-database";
import { describeStoreContract, event } from "./store-contract";

// Every migration file's version, in order: each must be applied exactly once.
const MIGRATION_VERSIONS = readdirSync(join(__dirname, "../../src/store/postgres/migrations"))
  .filter((f) => /^\d{4}_.+\.sql$/.test(f))
  .map((f) => Number(f.slice(0, 4)))
  .sort((a, b) => a - b);

describeStoreContract("PostgreSQL", async () => {
  const db = await createTestDatabase();
  const store = await openStore({ location: { kind: "postgres", url: db.url } });
  return { store, dispose: async () => { await store.close(); await db.drop(); } };
});

describe("PostgreSQL schema", () => {
  it("refuses to change or delete a stored event", async () => {
    const db = await createTestDatabase();
    const store = await openStore({ location: { kind: "postgres", url: db.url } });
    const sql = connect({ url: db.url, max: 1 });
    try {
      await store.append([{ stream: "a-1", expected: "any", events: [event()] }]);
      await expect(sql`update eventstore.events set type = 'Changed'`).rejects.toThrow(/append-only/);
      await expect(sql`delete from eventstore.events`).rejects.toThrow(/append-only/);
      await expect(sql`truncate eventstore.events`).rejects.toThrow(/append-only/);
      expect((await sql`select type from eventstore.events`).map((r) => r.type)).toEqual(["Tested"]);
    } finally {
      await sql.end();
      await store.close();
      await db.drop();
    }
  });

  it("migrating twice at once applies each migration once", async () => {
    const db = await createTestDatabase();
    try {
      const stores = await Promise.all([1, 2, 3].map(() => openStore({ location: { kind: "postgres", url: db.url } })));
      const sql = connect({ url: db.url, max: 1 });
      const rows = await sql`select version from eventstore.schema_migrations order by version`;
      expect(rows.map((r) => r.version)).toEqual(MIGRATION_VERSIONS);
      await sql.end();
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await db.drop();
    }
  });
});

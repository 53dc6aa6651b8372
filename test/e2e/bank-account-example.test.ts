import { randomUUID } from "node:crypto";
import { jsonData, ProjectionNotFoundError, type EventStoreClient, type ProjectionRecord } from "../../src/client";
import { startExample, type ExampleProcess } from "../support/example-process";
import { startClientServer } from "../support/client-server";
import type { TestDatabase } from "../support/test-database";
import type { TestServer } from "../support/test-server";
import { until } from "../support/until";

let db: TestDatabase;
let server: TestServer;
let client: EventStoreClient;
let close: () => Promise<void>;
const running: ExampleProcess[] = [];

beforeAll(async () => void ({ db, server, client, close } = await startClientServer()));

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.kill("SIGKILL")));
});

afterAll(() => close?.());

const unique = () => randomUUID().replaceAll("-", "").slice(0, 10);

function example(script: string, args: string[], env: Record<string, string> = {}): ExampleProcess {
  const p = startExample(script, args, { EVENTSTORE_URL: server.url, DATABASE_URL: db.url, ...env });
  running.push(p);
  return p;
}

/** A projection runner process of the example: fast leases and status checks, for the test's sake. */
function runner(name: string, category: string) {
  return example("run-projection", ["balances"], { PROJECTION_NAME: name, ACCOUNT_CATEGORY: category, LEASE_TTL_MS: "2000", CONTROL_INTERVAL_MS: "100" });
}

const stateOf = (r: ProjectionRecord) => JSON.parse(new TextDecoder().decode(r.state)) as { balances: Record<string, number>; handled: number };
const record = (name: string) => client.projections.get(name).catch(() => undefined);

/** `count` deposits of 1 over accounts a0..a4 (opened first), written while `during` runs. */
async function deposits(category: string, count: number, during?: () => Promise<void>): Promise<number> {
  for (let a = 0; a < 5; a++) await client.append(`${category}-a${a}`, [{ type: "AccountOpened", data: { owner: `owner ${a}` } }]);
  let written = 5;
  const writing = (async () => {
    for (let i = 0; i < count; i++) {
      await client.append(`${category}-a${i % 5}`, [{ type: "MoneyDeposited", data: { amount: 1 } }]);
      written++;
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5));
    }
  })();
  await Promise.all([writing, during?.()]);
  return written;
}

describe("the bank-account example", () => {
  it("runs start to end with one command: repository, a refused concurrent save, a query, projections and a read-model table", async () => {
    const p = example("main", []);
    expect(await p.exited).toBe(0);
    const out = p.stdout();
    expect(out).toContain('"refused":"WrongExpectedRevisionError"');
    expect(out).toMatch(/"afterRestart":\{"balances":\{"alice":2570,"bob":1025\},"handled":8\}/);
    expect(out).toContain('{"asked":"stopping","now":"idle","handled":8}');
    expect(out).toContain('{"asked":"deleting","now":"no record"}');
    expect(out).toContain('[{"id":"alice","owner":"Alice","balance":2570,"transactions":3},{"id":"bob","owner":"Bob","balance":1025,"transactions":3}]');
  });

  it("a persistent projection killed mid-stream and started again misses no event and handles none twice", async () => {
    const [category, name] = [`k${unique()}`, `balances-${unique()}`];
    let first = runner(name, category);
    const total = await deposits(category, 400, async () => {
      await until(async () => ((await record(name))?.position ?? 0n) > 0n && stateOf((await record(name))!).handled > 50, "progress");
      await first.kill("SIGKILL"); // no stop, no persist, no release: a crash
    });
    const afterCrash = stateOf((await record(name))!).handled;
    expect(afterCrash).toBeLessThan(total);
    first = runner(name, category); // waits for the dead runner's lease to expire, then carries on
    await until(async () => stateOf((await record(name))!).handled === total, `all ${total} events`);
    const state = stateOf((await record(name))!);
    expect(Object.values(state.balances).reduce((a, b) => a + b, 0)).toBe(total - 5);
    await example("control", ["stop", name]).exited;
    expect(await first.exited).toBe(0);
    expect(stateOf((await record(name))!).handled).toBe(total); // nothing handled twice on the way out
  });

  it("a second process stops, resets and deletes the running projection through the server, and it obeys", async () => {
    const [category, name] = [`c${unique()}`, `balances-${unique()}`];
    const total = await deposits(category, 30);
    let projection = runner(name, category);
    await until(async () => (await record(name)) && stateOf((await record(name))!).handled === total, "catch-up");

    const stop = example("control", ["stop", name]);
    expect(await stop.exited).toBe(0);
    expect(await projection.line((l) => l?.stopped === name)).toMatchObject({ status: "idle", state: { handled: total } });
    expect(await projection.exited).toBe(0);

    projection = runner(name, category);
    await until(async () => (await record(name))?.status === "running", "running again");
    const before = (await record(name))!.version;
    expect(await example("control", ["reset", name]).exited).toBe(0);
    await until(async () => {
      const r = await record(name);
      return r && r.version > before + 1n && stateOf(r).handled === total;
    }, "the reset and the refold");

    expect(await example("control", ["delete", name]).exited).toBe(0);
    expect(await projection.exited).toBe(0);
    await expect(client.projections.get(name)).rejects.toBeInstanceOf(ProjectionNotFoundError);
  });

  it("two runners of one projection: one runs, the other waits, and takes over when the first dies, applying no event twice", async () => {
    const [category, name] = [`t${unique()}`, `balances-${unique()}`];
    const a = runner(name, category);
    await until(async () => (await record(name))?.lease, "the first lease");
    const b = runner(name, category);
    await b.line((l) => l?.waiting !== undefined);
    const total = await deposits(category, 300, async () => {
      await until(async () => stateOf((await record(name))!).handled > 60, "progress");
      const holder = (await record(name))!.lease!.holder;
      const [first, second] = holder.includes(`:${a.child.pid}:`) ? [a, b] : [b, a];
      await first.kill("SIGKILL");
      await until(async () => (await record(name))?.lease?.holder.includes(`:${second.child.pid}:`), "the takeover");
    });
    await until(async () => stateOf((await record(name))!).handled === total, `all ${total} events`);
    const balances = stateOf((await record(name))!).balances;
    expect(Object.values(balances)).toEqual([total / 5 - 1, total / 5 - 1, total / 5 - 1, total / 5 - 1, total / 5 - 1]);
    // The emitted large deposits and the links: none here (deposits of 1), and the openings linked once each.
    const links = [];
    for await (const e of client.readStream(`${name}-openings`, { resolveLinks: true })) links.push(jsonData<{ owner: string }>(e).owner);
    expect(links.sort()).toEqual(["owner 0", "owner 1", "owner 2", "owner 3", "owner 4"]);
  });
});

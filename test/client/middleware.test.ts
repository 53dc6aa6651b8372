import type { JsonObject } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import {
  Aggregate,
  createRepository,
  jsonData,
  StreamNotFoundError,
  type AppendResult,
  type DomainEvent,
  type EventHandlers,
  type EventStoreClient,
  type Middleware,
  type RecordedEvent,
} from "../../src/client";
import { applyAfterLoad } from "../../src/client/middleware";
import { startClientServer } from "../support/client-server";

let client: EventStoreClient;
let close: () => Promise<void>;

beforeAll(async () => void ({ client, close } = await startClientServer()));

afterAll(() => close?.());

type AccountEvent = { type: "Opened"; data: { owner: string } } | { type: "Deposited"; data: { amount: number } };

class Account extends Aggregate<AccountEvent> {
  owner: string | undefined;
  balance = 0;
  protected readonly handlers: EventHandlers<AccountEvent> = {
    Opened: ({ owner }) => void (this.owner = owner),
    Deposited: ({ amount }) => void (this.balance += amount),
  };
}

const newId = () => randomUUID().replaceAll("-", "");
const accounts = (middleware: Middleware[]) =>
  createRepository({ client, middleware, stream: (id) => `account-${id}`, create: (id) => new Account(id) });

async function collect(events: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

const correlate = (correlationId: string): Middleware => ({
  beforeAppend: (event) => ({ ...event, metadata: { ...event.metadata, correlationId } }),
});

/** Stands for encryption: the owner is stored reversed and read back straight. */
const hideOwner: Middleware = {
  beforeAppend: (event) =>
    event.type === "Opened" ? { ...event, data: { owner: [...(event.data as { owner: string }).owner].reverse().join("") } } : event,
  afterLoad: (event) =>
    event.type === "Opened" ? { ...event, payload: { owner: [...(event.payload as { owner: string }).owner].reverse().join("") } } : event,
};

describe("middleware in a repository", () => {
  it("stores what beforeAppend returns, each step given the one before's result", async () => {
    const id = newId();
    const seen: JsonObject[] = [];
    const repository = accounts([correlate("c-1"), { beforeAppend: (event) => (seen.push(event.metadata ?? {}), event) }]);
    const account = new Account(id);
    account.recordThat({ type: "Opened", data: { owner: "ann" } }, { tenant: "acme" });
    await repository.save(account);
    expect(seen).toEqual([{ tenant: "acme", correlationId: "c-1" }]);
    const [stored] = await collect(client.readStream(`account-${id}`));
    expect(stored.metadata).toEqual({ tenant: "acme", correlationId: "c-1" });
  });

  it("stores nothing of a save that beforeAppend rejects, and keeps its events pending", async () => {
    const id = newId();
    const repository = accounts([
      { beforeAppend: (event) => (event.type === "Deposited" && (event.data as { amount: number }).amount > 100 ? Promise.reject(new Error("over the limit")) : event) },
    ]);
    const account = new Account(id);
    account.recordThat({ type: "Opened", data: { owner: "ann" } });
    account.recordThat({ type: "Deposited", data: { amount: 500 } });
    await expect(repository.save(account)).rejects.toThrow("over the limit");
    await expect(collect(client.readStream(`account-${id}`))).rejects.toBeInstanceOf(StreamNotFoundError);
    expect(account.popEvents().map((e) => e.type)).toEqual(["Opened", "Deposited"]);
  });

  it("upcasts an old event version on load with afterLoad", async () => {
    const id = newId();
    await client.append(`account-${id}`, [
      { type: "Opened", data: { owner: "ann" } },
      { type: "Deposited", data: { amt: 5 }, metadata: { schemaVersion: 1 } },
      { type: "Deposited", data: { amount: 7 }, metadata: { schemaVersion: 2 } },
    ]);
    const upcaster: Middleware = {
      afterLoad: (event) =>
        event.type === "Deposited" && event.metadata.schemaVersion === 1
          ? { ...event, payload: { amount: (event.payload as { amt: number }).amt }, metadata: { ...event.metadata, schemaVersion: 2 } }
          : event,
    };
    expect((await accounts([upcaster]).load(id)).balance).toBe(12);
    expect((await accounts([]).load(id)).balance).toBeNaN(); // what the upcaster prevents
  });

  it("changes events both ways: stored one way, loaded the other", async () => {
    const id = newId();
    const repository = accounts([hideOwner]);
    const account = new Account(id);
    account.recordThat({ type: "Opened", data: { owner: "ann-marie" } });
    await repository.save(account);
    const [stored] = await collect(client.readStream(`account-${id}`));
    expect(jsonData(stored)).toEqual({ owner: "eiram-nna" });
    expect((await repository.load(id)).owner).toBe("ann-marie");
  });

  it("shows afterAppend the events as stored, with their revisions and positions", async () => {
    const id = newId();
    const calls: { events: RecordedEvent[]; result: AppendResult }[] = [];
    const repository = accounts([correlate("c-2"), { afterAppend: (events, result) => void calls.push({ events, result }) }]);
    const account = new Account(id);
    account.recordThat({ type: "Opened", data: { owner: "ann" } });
    await repository.save(account);
    account.recordThat({ type: "Deposited", data: { amount: 1 } });
    account.recordThat({ type: "Deposited", data: { amount: 2 } });
    await repository.save(account);

    const stored = await collect(client.readStream(`account-${id}`));
    const [, second] = calls;
    expect(second.result.revision).toBe(2n);
    const fields = (e: RecordedEvent) => ({ ...e, storedAt: e.storedAt.getTime(), data: Buffer.from(e.data).toString() });
    expect(second.events.map(fields)).toEqual(stored.slice(1).map(fields));
    expect(second.events.map((e) => [e.revision, e.metadata])).toEqual([
      [1n, { correlationId: "c-2" }],
      [2n, { correlationId: "c-2" }],
    ]);
  });

  it("fails the save's promise when afterAppend throws, with the events stored and the aggregate up to date", async () => {
    const id = newId();
    const repository = accounts([{ afterAppend: () => Promise.reject(new Error("outbox down")) }]);
    const account = new Account(id);
    account.recordThat({ type: "Opened", data: { owner: "ann" } });
    await expect(repository.save(account)).rejects.toThrow("outbox down");
    expect(account.storedVersion).toBe(1n);
    expect(await collect(client.readStream(`account-${id}`))).toHaveLength(1);
  });
});

describe("applyAfterLoad", () => {
  it("runs each afterLoad in order on what the one before returned", async () => {
    const event = { type: "Deposited", payload: { amount: 1 }, metadata: {} } as unknown as DomainEvent;
    const step = (factor: number): Middleware => ({
      afterLoad: async (e) => ({ ...e, payload: { amount: (e.payload as { amount: number }).amount * factor + 1 } }),
    });
    expect((await applyAfterLoad([step(2), {}, step(10)], event)).payload).toEqual({ amount: 31 });
  });
});

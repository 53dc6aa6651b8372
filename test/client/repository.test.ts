import { randomUUID } from "node:crypto";
import {
  Aggregate,
  createEventTypeRegistry,
  createRepository,
  jsonData,
  snapshotStream,
  StreamNotFoundError,
  WrongExpectedRevisionError,
  type EventHandlers,
  type EventStoreClient,
  type EventType,
  type RecordedEvent,
  type RepositoryOptions,
} from "../../src/client";
import { startClientServer } from "../support/client-server";

let client: EventStoreClient;
let close: () => Promise<void>;

beforeAll(async () => void ({ client, close } = await startClientServer()));

afterAll(() => close?.());

type AccountEvent =
  | { type: "Opened"; data: { owner: string } }
  | { type: "Deposited"; data: { amount: number } }
  | { type: "Withdrawn"; data: { amount: number } };

class Account extends Aggregate<AccountEvent> {
  owner: string | undefined;
  balance = 0;

  protected readonly handlers: EventHandlers<AccountEvent> = {
    Opened: ({ owner }) => void (this.owner = owner),
    Deposited: ({ amount }) => void (this.balance += amount),
    Withdrawn: ({ amount }) => void (this.balance -= amount),
  };

  open(owner: string): this {
    this.recordThat({ type: "Opened", data: { owner } });
    return this;
  }

  deposit(amount: number): this {
    this.recordThat({ type: "Deposited", data: { amount } });
    return this;
  }

  withdraw(amount: number): this {
    if (amount > this.balance) throw new Error("insufficient funds");
    this.recordThat({ type: "Withdrawn", data: { amount } });
    return this;
  }
}

class SnapshottedAccount extends Account {
  override toSnapshot() {
    return { owner: this.owner, balance: this.balance };
  }
  protected override fromSnapshot(state: unknown) {
    ({ owner: this.owner, balance: this.balance } = state as { owner: string; balance: number });
  }
}

const newId = () => randomUUID().replaceAll("-", "");

function accounts<A extends Account = Account>(options: Partial<RepositoryOptions<A>> = {}) {
  return createRepository<A>({
    client,
    stream: (id) => `account-${id}`,
    create: (id) => new Account(id) as A,
    ...options,
  });
}

/** The client, with the revisions each readStream yielded and the streams appended to, per call. */
function watched(inner: EventStoreClient = client) {
  const reads: { stream: string; revisions: bigint[] }[] = [];
  const appends: string[] = [];
  return {
    reads,
    appends,
    client: {
      append: ((stream, events, options) => {
        appends.push(stream);
        return inner.append(stream, events, options);
      }) satisfies EventStoreClient["append"],
      readStream: (stream: string, options?: Parameters<EventStoreClient["readStream"]>[1]) => {
        const read = { stream, revisions: [] as bigint[] };
        reads.push(read);
        return (async function* () {
          for await (const e of inner.readStream(stream, options)) {
            read.revisions.push(e.revision);
            yield e;
          }
        })();
      },
    },
  };
}

async function collect(events: AsyncIterable<RecordedEvent>): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) all.push(e);
  return all;
}

describe("createRepository", () => {
  it("saves recorded events and loads the same aggregate back", async () => {
    const repository = accounts();
    const id = newId();
    const account = await repository.load(id);
    expect(account.version).toBe(0n);
    expect(await repository.exists(id)).toBe(false);

    account.open("ann").deposit(10).withdraw(3);
    const result = await repository.save(account);
    expect(result).toMatchObject({ stream: `account-${id}`, revision: 2n });
    expect(account.storedVersion).toBe(3n);

    const loaded = await repository.load(id);
    expect({ owner: loaded.owner, balance: loaded.balance, version: loaded.version }).toEqual({ owner: "ann", balance: 7, version: 3n });
    expect(await repository.exists(id)).toBe(true);
    const stored = await collect(client.readStream(`account-${id}`));
    expect(stored.map((e) => [e.type, e.contentType, jsonData(e)])).toEqual([
      ["Opened", "application/json", { owner: "ann" }],
      ["Deposited", "application/json", { amount: 10 }],
      ["Withdrawn", "application/json", { amount: 3 }],
    ]);
  });

  it("makes no call when there is nothing to save", async () => {
    const spy = watched();
    const repository = accounts({ client: spy.client });
    expect(await repository.save(new Account(newId()))).toBeUndefined();
    expect(spy.appends).toEqual([]);
  });

  it("serialises and decodes through the registry", async () => {
    const deposited: EventType<{ amount: number }> = {
      name: "Deposited",
      contentType: "text/plain",
      serialize: ({ amount }) => new TextEncoder().encode(String(amount)),
      deserialize: (data) => ({ amount: Number(new TextDecoder().decode(data)) }),
    };
    const repository = accounts({ registry: createEventTypeRegistry(deposited) });
    const id = newId();
    await repository.save(new Account(id).open("ann").deposit(12));
    const [, stored] = await collect(client.readStream(`account-${id}`));
    expect([stored.contentType, new TextDecoder().decode(stored.data)]).toEqual(["text/plain", "12"]);
    expect((await repository.load(id)).balance).toBe(12);
  });

  it("refuses the second of two concurrent saves, and loses or doubles no event", async () => {
    const repository = accounts();
    const id = newId();
    await repository.save(new Account(id).open("ann").deposit(10));
    const first = await repository.load(id);
    const second = await repository.load(id);

    await repository.save(first.deposit(5));
    const refused = await repository.save(second.withdraw(10)).catch((e) => e);
    expect(refused).toBeInstanceOf(WrongExpectedRevisionError);
    expect(refused).toMatchObject({ stream: `account-${id}`, expectedRevision: "1", actualRevision: 2n });
    expect(second.storedVersion).toBe(2n);
    expect(second.popEvents().map((e) => e.type)).toEqual(["Withdrawn"]); // pending still, not lost in the aggregate either

    const retried = await repository.load(id);
    await repository.save(retried.withdraw(10));
    const stored = await collect(client.readStream(`account-${id}`));
    expect(stored.map((e) => [e.revision, e.type, jsonData(e)])).toEqual([
      [0n, "Opened", { owner: "ann" }],
      [1n, "Deposited", { amount: 10 }],
      [2n, "Deposited", { amount: 5 }],
      [3n, "Withdrawn", { amount: 10 }],
    ]);
    expect((await repository.load(id)).balance).toBe(5);
  });

  it("stores events once when a save is repeated after its answer was lost", async () => {
    let loseAnswer = true;
    const repository = accounts({
      client: {
        readStream: client.readStream,
        append: async (stream, events, options) => {
          const result = await client.append(stream, events, options);
          if (loseAnswer) throw new Error("connection reset");
          return result;
        },
      },
    });
    const id = newId();
    const account = new Account(id).open("ann").deposit(1);
    await expect(repository.save(account)).rejects.toThrow("connection reset");
    expect(account.storedVersion).toBe(0n);

    loseAnswer = false;
    expect(await repository.save(account)).toMatchObject({ revision: 1n });
    expect(await collect(client.readStream(`account-${id}`))).toHaveLength(2);
  });

  it("gives a new aggregate for a deleted stream, and saves it where the stream's revisions go on", async () => {
    const repository = accounts();
    const id = newId();
    await repository.save(new Account(id).open("ann").deposit(10));
    await client.deleteStream(`account-${id}`);

    const reopened = await repository.load(id);
    expect([reopened.version, reopened.balance]).toEqual([0n, 0]);
    expect(await repository.save(reopened.open("bob"))).toMatchObject({ revision: 2n });
    expect([reopened.version, reopened.expectedRevision]).toEqual([3n, 2n]);
    const loaded = await repository.load(id);
    expect({ owner: loaded.owner, balance: loaded.balance, version: loaded.version }).toEqual({ owner: "bob", balance: 0, version: 3n });
    expect(await repository.save(loaded.deposit(1))).toMatchObject({ revision: 3n });
  });
});

describe("createRepository with snapshots", () => {
  const snapshotted = (options: Partial<RepositoryOptions<SnapshottedAccount>> = {}) =>
    accounts<SnapshottedAccount>({ create: (id) => new SnapshottedAccount(id), snapshots: { every: 3 }, ...options });

  it("writes a snapshot when a save passes a multiple of `every`, and loads only the events after it", async () => {
    const id = newId();
    const stream = `account-${id}`;
    const repository = snapshotted();
    const account = new SnapshottedAccount(id).open("ann").deposit(10);
    await repository.save(account);
    expect(await collect(client.readStream(snapshotStream(stream))).catch((e) => e)).toBeInstanceOf(StreamNotFoundError);

    await repository.save(account.deposit(5).deposit(1)); // revisions 2 and 3: passes 3
    await repository.save(account.deposit(2)); // revision 4: passes none
    const snapshots = await collect(client.readStream(snapshotStream(stream)));
    expect(snapshots.map((e) => [e.type, e.metadata, jsonData(e)])).toEqual([
      ["$snapshot", { revision: "3", schemaVersion: 1 }, { owner: "ann", balance: 16 }],
    ]);

    const spy = watched();
    const loaded = await snapshotted({ client: spy.client }).load(id);
    expect({ balance: loaded.balance, version: loaded.version }).toEqual({ balance: 18, version: 5n });
    // Revision 3 is read only to check that the snapshot's event is still there; 4 is applied.
    expect(spy.reads).toEqual([
      { stream: snapshotStream(stream), revisions: [0n] },
      { stream, revisions: [3n, 4n] },
    ]);

    // A snapshot that disagrees with the events shows that they were not replayed.
    await client.append(snapshotStream(stream), [
      { type: "$snapshot", data: { owner: "ann", balance: 1000 }, metadata: { revision: "3", schemaVersion: 1 } },
    ]);
    expect((await repository.load(id)).balance).toBe(1002);
  });

  it("ignores a snapshot of another schema version", async () => {
    const id = newId();
    await snapshotted().save(new SnapshottedAccount(id).open("ann").deposit(10).deposit(5));
    const spy = watched();
    const errors: unknown[] = [];
    const loaded = await snapshotted({ client: spy.client, snapshots: { every: 3, schemaVersion: 2 }, onSnapshotError: (e) => errors.push(e) }).load(id);
    expect(loaded.balance).toBe(15);
    expect(spy.reads[1]).toEqual({ stream: `account-${id}`, revisions: [0n, 1n, 2n] });
    expect(errors).toEqual([]);
  });

  it("replays the whole stream when the snapshot is of a deleted stream's old life", async () => {
    const id = newId();
    const repository = snapshotted();
    await repository.save(new SnapshottedAccount(id).open("ann").deposit(10).deposit(5));
    await client.deleteStream(`account-${id}`);
    await repository.save((await repository.load(id)).open("bob").deposit(1));
    const loaded = await repository.load(id);
    expect({ owner: loaded.owner, balance: loaded.balance, version: loaded.version }).toEqual({ owner: "bob", balance: 1, version: 5n });
  });

  it("reports a snapshot it cannot use and loads from the events", async () => {
    const id = newId();
    const errors: unknown[] = [];
    const repository = snapshotted({ onSnapshotError: (e) => errors.push(e) });
    await repository.save(new SnapshottedAccount(id).open("ann").deposit(10));
    await client.append(snapshotStream(`account-${id}`), [
      { type: "$snapshot", data: new TextEncoder().encode("{broken"), contentType: "application/json", metadata: { revision: "1", schemaVersion: 1 } },
    ]);
    expect((await repository.load(id)).balance).toBe(10);
    expect(errors).toEqual([expect.any(SyntaxError)]);
  });

  it("keeps a save whose snapshot could not be written, and reports why", async () => {
    const id = newId();
    const reported: unknown[] = [];
    const repository = snapshotted({
      client: {
        readStream: client.readStream,
        append: (stream, events, options) => (stream.startsWith("$snapshot-") ? Promise.reject(new Error("disk full")) : client.append(stream, events, options)),
      },
      onSnapshotError: (error, context) => reported.push({ error, context }),
    });
    expect(await repository.save(new SnapshottedAccount(id).open("ann").deposit(1).deposit(2))).toMatchObject({ revision: 2n });
    expect(reported).toEqual([{ error: new Error("disk full"), context: { stream: `account-${id}` } }]);
    expect((await repository.load(id)).balance).toBe(3);
  });

  it("refuses to save an aggregate without snapshots into a repository that takes them, storing nothing", async () => {
    const id = newId();
    const repository = accounts({ snapshots: { every: 10 } });
    const account = new Account(id).open("ann");
    await expect(repository.save(account)).rejects.toThrow("Account does not implement toSnapshot and fromSnapshot, and its repository takes snapshots");
    expect(await repository.exists(id)).toBe(false);
    expect(account.popEvents()).toHaveLength(1);
  });

  it("refuses a snapshot interval that is not a positive integer", () => {
    expect(() => accounts({ snapshots: { every: 0 } })).toThrow("snapshots.every must be a positive integer (got 0)");
    expect(() => accounts({ snapshots: { every: 2.5 } })).toThrow("snapshots.every must be a positive integer (got 2.5)");
  });
});

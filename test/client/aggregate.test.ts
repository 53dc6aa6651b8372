import fc from "fast-check";
import { Aggregate, type EventHandlers, type PendingEvent } from "../../src/client";
import { markStored, requeueEvents } from "../../src/client/aggregate";

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

  open(owner: string): void {
    if (this.owner !== undefined) throw new Error("already open");
    this.recordThat({ type: "Opened", data: { owner } });
  }

  deposit(amount: number): void {
    this.mustBeOpen();
    if (amount <= 0) throw new Error("a deposit must be positive");
    this.recordThat({ type: "Deposited", data: { amount } });
  }

  withdraw(amount: number): void {
    this.mustBeOpen();
    if (amount <= 0 || amount > this.balance) throw new Error("insufficient funds");
    this.recordThat({ type: "Withdrawn", data: { amount } });
  }

  get state() {
    return { owner: this.owner, balance: this.balance };
  }

  private mustBeOpen(): void {
    if (this.owner === undefined) throw new Error("not open");
  }
}

/** Snapshots implemented; its handler for Deposited refuses what commands would have checked. */
class Counter extends Aggregate<{ type: "Added"; data: { n: number } }> {
  total = 0;
  protected readonly handlers: EventHandlers<{ type: "Added"; data: { n: number } }> = {
    Added: ({ n }) => {
      if (!Number.isInteger(n)) throw new Error("not an integer");
      this.total += n;
    },
  };
  override toSnapshot() {
    return { total: this.total };
  }
  protected override fromSnapshot(state: unknown) {
    this.total = (state as { total: number }).total;
  }
}

type Command = { kind: "open"; owner: string } | { kind: "deposit" | "withdraw"; amount: number } | { kind: "save" };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ kind: fc.constant("open" as const), owner: fc.string({ maxLength: 5 }) }),
  fc.record({ kind: fc.constant("deposit" as const), amount: fc.integer({ min: -5, max: 100 }) }),
  fc.record({ kind: fc.constant("withdraw" as const), amount: fc.integer({ min: -5, max: 150 }) }),
  fc.record({ kind: fc.constant("save" as const) }),
);

describe("Aggregate, for any sequence of commands", () => {
  it("applies each accepted command once, and a rejected one changes neither state nor version", () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 40 }), (commands) => {
        const account = new Account("a-1");
        const popped: PendingEvent<AccountEvent>[] = [];
        let applied = 0;
        let balance = 0; // the model
        for (const c of commands) {
          const before = { state: account.state, version: account.version };
          if (c.kind === "save") {
            popped.push(...account.popEvents());
            expect(account.version).toBe(before.version);
            continue;
          }
          try {
            if (c.kind === "open") account.open(c.owner);
            else if (c.kind === "deposit") account.deposit(c.amount);
            else account.withdraw(c.amount);
          } catch {
            expect({ state: account.state, version: account.version }).toEqual(before);
            continue;
          }
          applied++;
          if (c.kind === "deposit") balance += c.amount;
          if (c.kind === "withdraw") balance -= c.amount;
        }
        popped.push(...account.popEvents());

        expect(account.version).toBe(BigInt(applied));
        expect(account.balance).toBe(balance);
        expect(account.balance).toBeGreaterThanOrEqual(0);
        expect(popped).toHaveLength(applied);
        expect(new Set(popped.map((e) => e.id)).size).toBe(applied);
        expect(account.popEvents()).toEqual([]);

        const replayed = new Account("a-1");
        replayed.replay(popped);
        expect(replayed.state).toEqual(account.state);
        expect(replayed.version).toBe(account.version);
        expect(replayed.storedVersion).toBe(BigInt(applied));
        expect(replayed.popEvents()).toEqual([]);
      }),
    );
  });
});

describe("Aggregate", () => {
  it("queues each recorded event with its metadata and a fresh id, and hands the handler the metadata", () => {
    const seen: unknown[] = [];
    class Watched extends Account {
      protected override readonly handlers: EventHandlers<AccountEvent> = {
        Opened: (data, event) => void seen.push({ data, event }),
        Deposited: () => {},
        Withdrawn: () => {},
      };
    }
    const metadata = { by: "ann" };
    const account = new Watched("a-1");
    account.recordThat({ type: "Opened", data: { owner: "ann" } }, metadata);
    metadata.by = "changed later";
    expect(seen).toEqual([{ data: { owner: "ann" }, event: { type: "Opened", metadata: { by: "ann" } } }]);
    const [event] = account.popEvents();
    expect(event).toEqual({ type: "Opened", data: { owner: "ann" }, metadata: { by: "ann" }, id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
  });

  it("queues nothing and keeps its version when a handler throws", () => {
    const counter = new Counter("c-1");
    counter.recordThat({ type: "Added", data: { n: 2 } });
    expect(() => counter.recordThat({ type: "Added", data: { n: 0.5 } })).toThrow("not an integer");
    expect(counter.version).toBe(1n);
    expect(counter.total).toBe(2);
    expect(counter.popEvents().map((e) => e.data)).toEqual([{ n: 2 }]);
  });

  it("expects no stream when new, and the last stored revision once history is replayed or events are marked stored", () => {
    const account = new Account("a-1");
    expect(account.expectedRevision).toBe("no_stream");
    account.replay([{ type: "Opened", data: { owner: "ann" } }, { type: "Deposited", data: { amount: 5 } }]);
    expect(account.expectedRevision).toBe(1n);
    account.deposit(3);
    expect(account.version).toBe(3n);
    expect(account.storedVersion).toBe(2n);
    expect(account.expectedRevision).toBe(1n);
    account.popEvents();
    account[markStored](2n);
    expect(account.storedVersion).toBe(3n);
    expect(account.expectedRevision).toBe(2n);
  });

  it("takes the stored revision as its version when events are marked stored past a deleted stream's revisions", () => {
    const account = new Account("a-1");
    account.open("ann");
    const saving = account.popEvents();
    account.deposit(5); // recorded while the save ran
    account[markStored](BigInt(saving.length - 1) + 4n);
    expect([account.storedVersion, account.version]).toEqual([5n, 6n]);
  });

  it("puts events of a failed save back ahead of those recorded since", () => {
    const account = new Account("a-1");
    account.open("ann");
    const first = account.popEvents();
    account.deposit(4);
    account[requeueEvents](first);
    expect(account.popEvents().map((e) => e.type)).toEqual(["Opened", "Deposited"]);
    expect(account.version).toBe(2n);
  });

  it("follows the stream's revisions in history, also past a gap left by a deleted stream", () => {
    const account = new Account("a-1");
    account.replay([{ type: "Opened", data: { owner: "ann" }, revision: 10n }]);
    expect(account.version).toBe(11n);
    expect(account.expectedRevision).toBe(10n);
  });

  it("refuses history it cannot apply in full", () => {
    const account = new Account("a-1");
    expect(() => account.replay([{ type: "Renamed", data: {} }])).toThrow("Account a-1 has no handler for event type Renamed");
    expect(() => account.replay([{ type: "constructor", data: {} }])).toThrow("Account a-1 has no handler for event type constructor");
    expect(() => account.recordThat({ type: "toString" } as never)).toThrow("has no handler for event type toString");
    expect(account.version).toBe(0n);

    account.replay([{ type: "Opened", data: { owner: "ann" }, revision: 0n }]);
    expect(() => account.replay([{ type: "Deposited", data: { amount: 1 }, revision: 0n }])).toThrow(
      "Account a-1 is at version 1: revision 0 (Deposited) is applied already",
    );

    account.deposit(1);
    expect(() => account.replay([{ type: "Deposited", data: { amount: 1 } }])).toThrow("Account a-1 has 1 unsaved events: history must come before new events");
  });

  it("says snapshots are not implemented when a subclass has not implemented them", () => {
    const account = new Account("a-1");
    expect(account.supportsSnapshots).toBe(false);
    expect(() => account.toSnapshot()).toThrow("Account does not implement toSnapshot(): implement toSnapshot and fromSnapshot, or configure no snapshots");
    expect(() => account.restoreSnapshot({}, 3n)).toThrow("Account does not implement fromSnapshot()");
    expect(account.version).toBe(0n);
  });

  it("starts from a snapshot at its version, and only a new aggregate", () => {
    const counter = new Counter("c-1");
    expect(counter.supportsSnapshots).toBe(true);
    counter.restoreSnapshot({ total: 40 }, 5n);
    expect({ total: counter.total, version: counter.version, storedVersion: counter.storedVersion }).toEqual({ total: 40, version: 5n, storedVersion: 5n });
    counter.replay([{ type: "Added", data: { n: 2 }, revision: 5n }]);
    expect(counter.total).toBe(42);
    expect(() => counter.restoreSnapshot({ total: 1 }, 1n)).toThrow("Counter c-1 is not new: a snapshot can only start an aggregate");
    expect(() => new Counter("c-2").restoreSnapshot({ total: 1 }, 0n)).toThrow("Counter c-2: a snapshot's version must be positive (got 0)");
  });
});

import { Aggregate, createRepository, type EventHandlers, type EventStoreClient, type Repository } from "../../src/client";

/** The events of a bank account: what happened, in the past tense. */
export type BankAccountEvent =
  | { type: "AccountOpened"; data: { owner: string } }
  | { type: "MoneyDeposited"; data: { amount: number } }
  | { type: "MoneyWithdrawn"; data: { amount: number } };

/** Payload types by event type, for typed projection handlers. */
export type BankAccountPayloads = {
  AccountOpened: { owner: string };
  MoneyDeposited: { amount: number };
  MoneyWithdrawn: { amount: number };
};

export class InsufficientFundsError extends Error {
  override name = "InsufficientFundsError";
}

/** An account: commands check the rules against the state, then record what happened. */
export class BankAccount extends Aggregate<BankAccountEvent> {
  owner?: string;
  balance = 0;

  protected readonly handlers: EventHandlers<BankAccountEvent> = {
    AccountOpened: ({ owner }) => void (this.owner = owner),
    MoneyDeposited: ({ amount }) => void (this.balance += amount),
    MoneyWithdrawn: ({ amount }) => void (this.balance -= amount),
  };

  open(owner: string): this {
    if (this.owner !== undefined) throw new Error(`account ${this.id} is already open`);
    this.recordThat({ type: "AccountOpened", data: { owner } });
    return this;
  }

  deposit(amount: number): this {
    if (!(amount > 0)) throw new RangeError("a deposit is positive");
    this.recordThat({ type: "MoneyDeposited", data: { amount } });
    return this;
  }

  withdraw(amount: number): this {
    if (amount > this.balance) throw new InsufficientFundsError(`account ${this.id} holds ${this.balance}, not ${amount}`);
    this.recordThat({ type: "MoneyWithdrawn", data: { amount } });
    return this;
  }

  // Snapshots: the state as plain data, and back.
  override toSnapshot(): unknown {
    return { owner: this.owner, balance: this.balance };
  }

  override fromSnapshot(state: unknown): void {
    ({ owner: this.owner, balance: this.balance } = state as { owner?: string; balance: number });
  }
}

/** Accounts live in streams `<category>-<id>`; a snapshot every 50 events. */
export function bankAccounts(client: EventStoreClient, category = "account"): Repository<BankAccount> {
  return createRepository({
    client,
    stream: (id) => `${category}-${id}`,
    create: (id) => new BankAccount(id),
    snapshots: { every: 50 },
    // Every event says which request caused it.
    middleware: [{ beforeAppend: (e) => ({ ...e, metadata: { ...e.metadata, correlationId: process.env.CORRELATION_ID ?? "example" } }) }],
  });
}

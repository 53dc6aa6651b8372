import type postgres from "postgres";
import {
  createPostgresReadModel,
  createQuery,
  insert,
  Projector,
  ReadModelProjector,
  update,
  type EventStoreClient,
  type ProjectorOptions,
  type TableChange,
} from "../../src/client";
import type { BankAccountPayloads } from "./bank-account";

/** The account id in a stream name `<category>-<id>`. */
const accountId = (stream: string) => stream.slice(stream.indexOf("-") + 1);

/** A transient query: every account's events folded into totals, as they are now. */
export function totals(client: EventStoreClient, category = "account") {
  return createQuery(client)
    .fromAll({ category })
    .init(() => ({ accounts: 0, deposited: 0, withdrawn: 0 }))
    .when<BankAccountPayloads>({
      AccountOpened: (s) => ({ ...s, accounts: s.accounts + 1 }),
      MoneyDeposited: (s, e) => ({ ...s, deposited: s.deposited + e.payload.amount }),
      MoneyWithdrawn: (s, e) => ({ ...s, withdrawn: s.withdrawn + e.payload.amount }),
    })
    .run();
}

export interface BalancesState {
  /** Balance by account id. */
  balances: Record<string, number>;
  /** Events handled: a test's witness that none is handled twice or missed. */
  handled: number;
}

/**
 * A persistent projection: balances by account, kept in its record on the server. It emits a
 * `LargeDeposit` event to its own stream for deposits of 1,000 or more, and links each opening
 * into the stream `<projection>-openings`.
 */
export function balances(client: EventStoreClient, name: string, category = "account", options: ProjectorOptions<BalancesState> = {}) {
  return new Projector<BalancesState>(client, name, options)
    .fromAll({ category })
    .init((): BalancesState => ({ balances: {}, handled: 0 }))
    .when<BankAccountPayloads>({
      AccountOpened: (s, e, { linkTo }) => {
        linkTo(`${name}-openings`, e);
        return { balances: { ...s.balances, [accountId(e.stream)]: 0 }, handled: s.handled + 1 };
      },
      MoneyDeposited: (s, e, { emit }) => {
        const id = accountId(e.stream);
        if (e.payload.amount >= 1000) emit({ type: "LargeDeposit", data: { account: id, amount: e.payload.amount } });
        return { balances: { ...s.balances, [id]: (s.balances[id] ?? 0) + e.payload.amount }, handled: s.handled + 1 };
      },
      MoneyWithdrawn: (s, e) => {
        const id = accountId(e.stream);
        return { balances: { ...s.balances, [id]: (s.balances[id] ?? 0) - e.payload.amount }, handled: s.handled + 1 };
      },
    });
}

interface AccountRow {
  balance: number;
  transactions: number;
}

/**
 * A read-model projection into the PostgreSQL table `table` (one row per account). The table and
 * the position it has reached change in one transaction, so a crash never applies an event twice.
 * Handlers write the new values (not increments) from the projection's state.
 */
export function balancesTable(
  client: EventStoreClient,
  sql: postgres.Sql<any>,
  name: string,
  table: string,
  category = "account",
  options: ProjectorOptions<Record<string, AccountRow>> = {},
) {
  const readModel = createPostgresReadModel({
    sql,
    table,
    columns: "id text primary key, owner text not null, balance numeric not null, transactions int not null",
  });
  const move = (s: Record<string, AccountRow>, stream: string, amount: number, stack: (c: TableChange) => void) => {
    const id = accountId(stream);
    const row = { balance: (s[id]?.balance ?? 0) + amount, transactions: (s[id]?.transactions ?? 0) + 1 };
    stack(update(row, { id }));
    return { ...s, [id]: row };
  };
  return new ReadModelProjector<Record<string, AccountRow>, TableChange>(client, name, readModel, options)
    .fromAll({ category })
    .init((): Record<string, AccountRow> => ({}))
    .when<BankAccountPayloads>({
      AccountOpened: (s, e, { stack }) => {
        const id = accountId(e.stream);
        stack(insert({ id, owner: e.payload.owner, balance: 0, transactions: 0 }));
        return { ...s, [id]: { balance: 0, transactions: 0 } };
      },
      MoneyDeposited: (s, e, { stack }) => move(s, e.stream, e.payload.amount, stack),
      MoneyWithdrawn: (s, e, { stack }) => move(s, e.stream, -e.payload.amount, stack),
    });
}

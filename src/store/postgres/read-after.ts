import { matchesFilter } from "../../domain/event-matcher";
import type { CatchUpPage, Selection } from "../event-store";
import { cancellable, type Cancellation } from "./cancellable";
import { eventColumns, toRecordedEvent, type EventRow } from "./event-row";
import { filterSql } from "./filter-sql";
import type { Sql } from "./sql";

/**
 * One keyset page of a catch-up read: selected events after `after`, in log order.
 *
 * The head is read with the page. Positions commit in order, so every event at or below that
 * head is in the page's snapshot: when the page is not full, the log is known to be scanned up
 * to the head, even if the filter matched nothing there.
 */
export async function readAfter(
  sql: Sql,
  selection: Selection,
  after: bigint,
  limit: number,
  cancellation?: Cancellation,
): Promise<CatchUpPage> {
  const stream = selection.stream;
  // One statement, so the head and the page share a snapshot; the head row always comes back,
  // with no event columns when nothing follows `after`.
  const rows = await cancellable(sql<(EventRow & { head: bigint })[]>`
    select h.position as head, e.*
      from eventstore.log h
      left join lateral (
        select ${eventColumns(sql)} from eventstore.events e
         where e.position > ${after}
           ${stream === undefined ? sql`` : sql`and e.stream = ${stream}`}
           ${selection.afterRevision === undefined ? sql`` : sql`and e.revision > ${selection.afterRevision}`}
           and ${filterSql(sql, selection.filter)}
         order by e.position limit ${limit}
      ) e on true`, cancellation);
  const head = rows[0].head;
  const found = rows[0].position === null ? [] : rows;
  // The SQL is a superset (regular expressions run here only); the in-memory filter decides.
  const events = found.map(toRecordedEvent).filter((e) => matchesFilter(selection.filter, e));
  const last = found.length > 0 ? found[found.length - 1].position : after;
  if (found.length === limit) return { events, reached: last, end: false };
  return { events, reached: last > head ? last : head > after ? head : after, end: true };
}

import { matchesFilter } from "../../domain/event-matcher";
import type { CatchUpPage, Selection } from "../event-store";
import { eventColumns, toRecordedEvent, type EventRow } from "./event-row";
import { filterSql } from "./filter-sql";
import type { Sql } from "./sql";

/**
 * One keyset page of a catch-up read: selected events after `after`, in log order.
 *
 * The head is read before the page. Positions commit in order, so every event at or below that
 * head was visible to the page's query: when the page is not full, the log is known to be
 * scanned up to the head, even if the filter matched nothing there.
 */
export async function readAfter(sql: Sql, selection: Selection, after: bigint, limit: number): Promise<CatchUpPage> {
  const [{ position: head }] = await sql<{ position: bigint }[]>`select position from eventstore.log`;
  const stream = selection.stream;
  const rows = await sql<EventRow[]>`
    select ${eventColumns(sql)} from eventstore.events e
     where e.position > ${after}
       ${stream === undefined ? sql`` : sql`and e.stream = ${stream}`}
       ${selection.afterRevision === undefined ? sql`` : sql`and e.revision > ${selection.afterRevision}`}
       and ${filterSql(sql, selection.filter)}
     order by e.position limit ${limit}`;
  // The SQL is a superset (regular expressions run here only); the in-memory filter decides.
  const events = rows.map(toRecordedEvent).filter((e) => matchesFilter(selection.filter, e));
  const last = rows.length > 0 ? rows[rows.length - 1].position : after;
  if (rows.length === limit) return { events, reached: last, end: false };
  return { events, reached: last > head ? last : head > after ? head : after, end: true };
}

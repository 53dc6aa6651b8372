import { linkTarget, type LinkTarget, type RecordedEvent } from "../../domain";
import { eventColumns, toRecordedEvent, type EventRow } from "./event-row";
import type { Sql } from "./sql";

/**
 * Replaces each link event by the event it points to (carrying the link), in one query for the
 * whole page. A link whose event is gone (its stream deleted, or never written) stays itself.
 */
export async function resolveLinks(sql: Sql, events: RecordedEvent[]): Promise<RecordedEvent[]> {
  const pointsTo = events.map(linkTarget);
  const targets = new Map<string, LinkTarget>();
  for (const target of pointsTo) if (target) targets.set(key(target), target);
  if (targets.size === 0) return events;
  const wanted = [...targets.values()].map((t) => ({ stream: t.stream, revision: t.revision.toString() }));
  const rows = await sql<EventRow[]>`
    select ${eventColumns(sql)}
      from jsonb_to_recordset(${sql.json(wanted)}) as t(stream text, revision bigint)
      join eventstore.events e on e.stream = t.stream and e.revision = t.revision
      join eventstore.streams s on s.name = e.stream
     where not s.deleted and not s.tombstoned and e.revision >= s.first_revision`;
  const found = new Map(rows.map((r) => [key(r), toRecordedEvent(r)]));
  return events.map((e, i) => {
    const target = pointsTo[i];
    const event = target && found.get(key(target));
    return event ? { ...event, link: e } : e;
  });
}

const key = (t: LinkTarget) => `${t.revision}@${t.stream}`;

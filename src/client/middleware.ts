import type { AppendResult } from "./event-store-client";
import type { DomainEvent } from "./event-types";
import type { EventData, RecordedEvent } from "./events";

/**
 * Steps that every event passes through on its way to and from the store: add correlation
 * metadata, encrypt a field, upcast an old version. Each may change the event or reject it by
 * throwing. Several run in the order given, each on what the one before returned.
 */
export interface Middleware {
  /** Before the append: what it returns is stored. Throwing stores nothing of that save. */
  beforeAppend?(event: EventData, context: { stream: string }): EventData | Promise<EventData>;
  /**
   * After the append, with the events as stored. They are stored whatever this does: a throw
   * fails the save's promise, but not the save.
   */
  afterAppend?(events: RecordedEvent[], result: AppendResult): void | Promise<void>;
  /** As each stored event is read, after its payload is decoded, before anything uses it. */
  afterLoad?(event: DomainEvent): DomainEvent | Promise<DomainEvent>;
}

export async function applyBeforeAppend(middleware: readonly Middleware[], event: EventData, context: { stream: string }): Promise<EventData> {
  for (const m of middleware) if (m.beforeAppend) event = await m.beforeAppend(event, context);
  return event;
}

export async function applyAfterAppend(middleware: readonly Middleware[], events: RecordedEvent[], result: AppendResult): Promise<void> {
  for (const m of middleware) if (m.afterAppend) await m.afterAppend(events, result);
}

export async function applyAfterLoad(middleware: readonly Middleware[], event: DomainEvent): Promise<DomainEvent> {
  for (const m of middleware) if (m.afterLoad) event = await m.afterLoad(event);
  return event;
}

import { createContextKey, type Code } from "@connectrpc/connect";

/**
 * What the server learns of one call as it runs, for its metrics and its log line: filled by
 * the layers that know each part, read by the server when the call ends.
 */
export interface CallRecord {
  /** How an implementation's error ended the call, where the protocol does not say it in a header. */
  code?: Code;
  /** Response messages sent. */
  messages: number;
  /** Who called, once authenticated. */
  principal?: string;
  /** Events the call wrote or sent, and the bytes of their data (written). */
  events?: number;
  bytes?: number;
}

/** Adds `events` (and their data's `bytes`) to the call's record. */
export function countEvents(record: CallRecord, events: number, bytes?: number): void {
  record.events = (record.events ?? 0) + events;
  if (bytes !== undefined) record.bytes = (record.bytes ?? 0) + bytes;
}

/** The call's record; a fresh one (counted nowhere) where the server keeps none. */
export const CALL_RECORD = createContextKey<CallRecord>({ messages: 0 }, { description: "the call's record" });

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
}

/** The call's record; a fresh one (counted nowhere) where the server keeps none. */
export const CALL_RECORD = createContextKey<CallRecord>({ messages: 0 }, { description: "the call's record" });

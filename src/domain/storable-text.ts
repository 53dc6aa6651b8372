import { invalidArgument } from "./errors";

// In unicode mode a surrogate class matches only unpaired surrogates.
const NOT_STORABLE = /[\u0000\uD800-\uDFFF]/u;

/**
 * PostgreSQL's text holds neither U+0000 nor an unpaired surrogate (it would fail the query):
 * such a string from a client is INVALID_ARGUMENT naming its field, never a failed statement.
 */
export function requireStorableText(s: string, field: string): string {
  if (!isStorableText(s)) throw invalidArgument(field, NOT_STORABLE_MESSAGE);
  return s;
}

export const NOT_STORABLE_MESSAGE = "must be valid Unicode without the character U+0000";

/** Whether PostgreSQL's text (and jsonb) can hold `s`. */
export function isStorableText(s: string): boolean {
  return !NOT_STORABLE.test(s);
}

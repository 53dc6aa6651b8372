import { invalidArgument } from "./errors";

// In unicode mode a surrogate class matches only unpaired surrogates.
const NOT_STORABLE = /[\u0000\uD800-\uDFFF]/u;

/**
 * PostgreSQL's text holds neither U+0000 nor an unpaired surrogate (it would fail the query):
 * such a string from a client is INVALID_ARGUMENT naming its field, never a failed statement.
 */
export function requireStorableText(s: string, field: string): string {
  if (NOT_STORABLE.test(s)) throw invalidArgument(field, "must be valid Unicode without the character U+0000");
  return s;
}

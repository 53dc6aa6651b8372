import { monotonicFactory } from "ulid";
import { invalidArgument } from "./errors";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const nextUlid = monotonicFactory();

/** Normalises a client's event id to lower-case UUID text, or throws INVALID_ARGUMENT. */
export function parseEventId(id: string, field: string): string {
  if (!UUID.test(id)) throw invalidArgument(field, `an event id must be a UUID (got ${JSON.stringify(id.slice(0, 64))})`);
  return id.toLowerCase();
}

/**
 * A new event id: a ULID (time-ordered, so ids made by one server sort by creation) written in
 * UUID form, since ids are stored and returned as UUIDs.
 */
export function newEventId(): string {
  return ulidToUuid(nextUlid());
}

function ulidToUuid(ulid: string): string {
  let value = 0n;
  for (const c of ulid) value = value * 32n + BigInt(CROCKFORD.indexOf(c));
  const hex = value.toString(16).padStart(32, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

import { invalidArgument } from "./errors";
import { isStorableText } from "./storable-text";

export const MAX_STREAM_NAME_LENGTH = 256;

// C0 and C1 control characters, and DEL.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** Throws INVALID_ARGUMENT unless `name` is 1..256 characters with no control characters. */
export function validateStreamName(name: string, field = "stream"): string {
  if (name.length === 0) throw invalidArgument(field, "a stream name must not be empty");
  const length = [...name].length;
  if (length > MAX_STREAM_NAME_LENGTH) {
    throw invalidArgument(field, `a stream name is at most ${MAX_STREAM_NAME_LENGTH} characters (got ${length})`);
  }
  if (CONTROL.test(name)) throw invalidArgument(field, "a stream name must not contain control characters");
  if (!isStorableText(name)) throw invalidArgument(field, "a stream name must be valid Unicode (no unpaired surrogate)");
  return name;
}

/** A stream's category: the part of its name before the first '-' (the whole name if none). */
export function categoryOf(stream: string): string {
  const dash = stream.indexOf("-");
  return dash < 0 ? stream : stream.slice(0, dash);
}

export const MAX_SUBSCRIPTION_NAME_LENGTH = 256;

/** Subscription names follow the stream-name rules: 1..256 characters, no control characters. */
export function validateSubscriptionName(name: string, field = "subscription_name"): string {
  if (name.length === 0) throw invalidArgument(field, "a subscription name must not be empty");
  if ([...name].length > MAX_SUBSCRIPTION_NAME_LENGTH || CONTROL.test(name) || !isStorableText(name)) {
    throw invalidArgument(field, `a subscription name is 1..${MAX_SUBSCRIPTION_NAME_LENGTH} characters of valid Unicode without control characters`);
  }
  return name;
}

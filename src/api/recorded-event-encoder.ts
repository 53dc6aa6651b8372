import { JSON_CONTENT_TYPE, type RecordedEvent } from "../domain";

/**
 * Writes an `eventstore.v1.RecordedEvent` in protobuf binary straight from the domain event,
 * with no message objects: the reflective `toBinary` spends about 8 µs per event (most of it
 * on the metadata Struct), which capped reads and subscriptions. The bytes are exactly those of
 * `toBinary(RecordedEventSchema, fromRecordedEvent(e, payloadAsJson))`; a property test holds
 * the two together, so a change to the message in the .proto fails it until this file follows.
 *
 * The result is length-delimited (a varint length, then the message): the form protobuf-es keeps
 * for an unknown length-delimited field, so that it can ride in a response's `$unknown` list
 * (see event-messages.ts).
 */
export function encodeRecordedEvent(e: RecordedEvent, payloadAsJson: boolean): Uint8Array {
  const json = payloadAsJson ? jsonPayload(e) : NOT_JSON;
  const w = new SizedWriter();
  const size = eventSize(e, json, w.sizes);
  w.start(size + varintSize(size));
  w.varint(size);
  writeEvent(w, e, json);
  return w.finish();
}

const NOT_JSON = Symbol("not JSON");

/** The payload as a JSON value, as `fromRecordedEvent` would send it as `json`; else NOT_JSON. */
function jsonPayload(e: RecordedEvent): unknown {
  if (e.contentType !== JSON_CONTENT_TYPE || e.data.byteLength === 0) return NOT_JSON;
  try {
    return JSON.parse(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength).toString("utf8"));
  } catch {
    return NOT_JSON; // not valid JSON after all: the bytes, as stored
  }
}

// Tags: (field number << 3) | wire type; every field number here is below 16: one byte each.
const VARINT = 0;
const BIT64 = 1;
const DELIMITED = 2;
const tag = (field: number, wireType: number) => (field << 3) | wireType;

/*
 * Two passes: the first computes the length of every length-delimited part, in the order the
 * second writes them (a parent's slot is reserved before its children's), so the second writes
 * each length prefix before the part without looking ahead.
 */

function eventSize(e: RecordedEvent, json: unknown, sizes: number[]): number {
  let n = stringSize(e.id, sizes) + stringSize(e.type, sizes) + stringSize(e.contentType, sizes);
  // The payload is a oneof member: written even when empty.
  n += json === NOT_JSON ? 1 + delimited(e.data.byteLength) : 1 + delimited(valueSize(json, sizes));
  n += 1 + delimited(structSize(e.metadata, sizes));
  n += stringSize(e.stream, sizes);
  n += uint64Size(e.revision) + uint64Size(e.position);
  n += 1 + delimited(timestampSize(e.storedAt, sizes));
  // A link's data, "<revision>@<stream>", is never JSON: it always goes as bytes.
  if (e.link) {
    const slot = sizes.push(0) - 1;
    sizes[slot] = eventSize(e.link, NOT_JSON, sizes);
    n += 1 + delimited(sizes[slot]);
  }
  return n;
}

function writeEvent(w: SizedWriter, e: RecordedEvent, json: unknown): void {
  w.string(tag(1, DELIMITED), e.id);
  w.string(tag(2, DELIMITED), e.type);
  w.string(tag(3, DELIMITED), e.contentType);
  if (json === NOT_JSON) {
    w.byte(tag(4, DELIMITED));
    w.varint(e.data.byteLength);
    w.bytes(e.data);
  } else {
    w.byte(tag(5, DELIMITED));
    w.varint(w.nextSize());
    writeValue(w, json);
  }
  w.byte(tag(6, DELIMITED));
  w.varint(w.nextSize());
  writeStruct(w, e.metadata);
  w.string(tag(7, DELIMITED), e.stream);
  w.uint64(tag(8, VARINT), e.revision);
  w.uint64(tag(9, VARINT), e.position);
  w.byte(tag(10, DELIMITED));
  w.varint(w.nextSize());
  writeTimestamp(w, e.storedAt);
  if (e.link) {
    w.byte(tag(11, DELIMITED));
    w.varint(w.nextSize());
    writeEvent(w, e.link, NOT_JSON);
  }
}

/** A proto3 string field: absent when empty. */
function stringSize(s: string, sizes: number[]): number {
  if (s.length === 0) return 0;
  const n = Buffer.byteLength(s, "utf8");
  sizes.push(n);
  return 1 + delimited(n);
}

function uint64Size(v: bigint): number {
  return v === 0n ? 0 : 1 + varintSize(v);
}

/** google.protobuf.Timestamp as `timestampFromDate` makes it: seconds and nanos of the date. */
function timestamp(d: Date): { seconds: number; nanos: number } {
  const ms = d.getTime();
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: (ms - seconds * 1000) * 1_000_000 }; // nanos never negative
}

function timestampSize(d: Date, sizes: number[]): number {
  const { seconds, nanos } = timestamp(d);
  const n = (seconds === 0 ? 0 : 1 + varintSize(seconds)) + (nanos === 0 ? 0 : 1 + varintSize(nanos));
  sizes.push(n);
  return n;
}

function writeTimestamp(w: SizedWriter, d: Date): void {
  const { seconds, nanos } = timestamp(d);
  if (seconds !== 0) w.int64(tag(1, VARINT), seconds);
  if (nanos !== 0) w.int64(tag(2, VARINT), nanos);
}

// google.protobuf.Struct: map<string, Value> fields = 1, an entry being { key = 1, value = 2 }.

function structSize(o: Record<string, unknown>, sizes: number[]): number {
  const slot = sizes.push(0) - 1;
  let n = 0;
  for (const key in o) {
    const entrySlot = sizes.push(0) - 1;
    // A map entry's key and value are always written, even when empty.
    const keyBytes = Buffer.byteLength(key, "utf8");
    sizes.push(keyBytes);
    const entry = 1 + delimited(keyBytes) + 1 + delimited(valueSize(o[key], sizes));
    sizes[entrySlot] = entry;
    n += 1 + delimited(entry);
  }
  sizes[slot] = n;
  return n;
}

function writeStruct(w: SizedWriter, o: Record<string, unknown>): void {
  for (const key in o) {
    w.byte(tag(1, DELIMITED));
    w.varint(w.nextSize());
    w.byte(tag(1, DELIMITED));
    w.varint(w.nextSize());
    w.utf8(key);
    w.byte(tag(2, DELIMITED));
    w.varint(w.nextSize());
    writeValue(w, o[key]);
  }
}

// google.protobuf.Value: a oneof (null 1, number 2, string 3, bool 4, struct 5, list 6);
// a oneof member is written even when it holds its type's zero value.

function valueSize(v: unknown, sizes: number[]): number {
  const slot = sizes.push(0) - 1;
  let n: number;
  if (v === null) n = 2;
  else if (typeof v === "number") n = 9;
  else if (typeof v === "string") {
    const bytes = Buffer.byteLength(v, "utf8");
    sizes.push(bytes);
    n = 1 + delimited(bytes);
  } else if (typeof v === "boolean") n = 2;
  else if (Array.isArray(v)) n = 1 + delimited(listSize(v, sizes));
  else if (typeof v === "object") n = 1 + delimited(structSize(v as Record<string, unknown>, sizes));
  else throw new TypeError(`not a JSON value: ${typeof v}`);
  sizes[slot] = n;
  return n;
}

function writeValue(w: SizedWriter, v: unknown): void {
  if (v === null) {
    w.byte(tag(1, VARINT));
    w.byte(0);
  } else if (typeof v === "number") {
    w.byte(tag(2, BIT64));
    w.double(v);
  } else if (typeof v === "string") {
    w.byte(tag(3, DELIMITED));
    w.varint(w.nextSize());
    w.utf8(v);
  } else if (typeof v === "boolean") {
    w.byte(tag(4, VARINT));
    w.byte(v ? 1 : 0);
  } else if (Array.isArray(v)) {
    w.byte(tag(6, DELIMITED));
    w.varint(w.nextSize());
    for (const item of v) {
      w.byte(tag(1, DELIMITED));
      w.varint(w.nextSize());
      writeValue(w, item);
    }
  } else {
    w.byte(tag(5, DELIMITED));
    w.varint(w.nextSize());
    writeStruct(w, v as Record<string, unknown>);
  }
}

/** google.protobuf.ListValue: repeated Value values = 1. */
function listSize(items: unknown[], sizes: number[]): number {
  const slot = sizes.push(0) - 1;
  let n = 0;
  for (const item of items) n += 1 + delimited(valueSize(item, sizes));
  sizes[slot] = n;
  return n;
}

/** A length-delimited part's bytes after its tag: the length, then the part. */
function delimited(n: number): number {
  return varintSize(n) + n;
}

function varintSize(v: number | bigint): number {
  if (typeof v === "bigint") return v < 0n ? 10 : bigVarintSize(v);
  if (v < 0) return 10; // negative int32/int64: sign-extended to 64 bits
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function bigVarintSize(v: bigint): number {
  let n = 1;
  while (v >= 128n) {
    v >>= 7n;
    n++;
  }
  return n;
}

/** Writes into one buffer of the computed size, taking the lengths in the order they were pushed. */
class SizedWriter {
  readonly sizes: number[] = [];
  private next = 0;
  private buf = Buffer.alloc(0);
  private pos = 0;

  start(total: number): void {
    this.buf = Buffer.allocUnsafe(total);
  }

  finish(): Uint8Array {
    if (this.pos !== this.buf.length || this.next !== this.sizes.length) {
      throw new Error(`encoder bug: wrote ${this.pos} of ${this.buf.length} bytes, used ${this.next} of ${this.sizes.length} sizes`);
    }
    return this.buf;
  }

  nextSize(): number {
    return this.sizes[this.next++];
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(v: number): void {
    while (v >= 128) {
      this.buf[this.pos++] = (v % 128) | 128;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
  }

  uint64(fieldTag: number, v: bigint): void {
    if (v === 0n) return;
    this.byte(fieldTag);
    if (v <= BigInt(Number.MAX_SAFE_INTEGER)) return this.varint(Number(v));
    while (v >= 128n) {
      this.buf[this.pos++] = Number(v & 127n) | 128;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }

  /** A signed varint field; a negative value is written as its 64-bit two's complement. */
  int64(fieldTag: number, v: number): void {
    this.byte(fieldTag);
    if (v >= 0) return this.varint(v);
    let u = BigInt.asUintN(64, BigInt(v));
    while (u >= 128n) {
      this.buf[this.pos++] = Number(u & 127n) | 128;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  double(v: number): void {
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.byteLength;
  }

  /** A UTF-8 string whose byte length the size pass recorded (and the caller wrote). */
  utf8(s: string): void {
    this.pos += this.buf.write(s, this.pos, "utf8");
  }

  /** A proto3 string field: absent when empty. */
  string(fieldTag: number, s: string): void {
    if (s.length === 0) return;
    this.byte(fieldTag);
    this.varint(this.nextSize());
    this.utf8(s);
  }
}

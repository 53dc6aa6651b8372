import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { ValueSchema, type Value } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import { EventBatchSchema, ReadAllResponseSchema, RecordedEventSchema } from "../../gen/eventstore/v1/eventstore_pb";
import { fromRecordedEvent } from "../../src/api/domain-to-proto";
import { eventMessages } from "../../src/api/event-messages";
import { encodeRecordedEvent } from "../../src/api/recorded-event-encoder";
import type { RecordedEvent } from "../../src/domain";

// Without "__proto__" keys: protobuf-es's fromJson drops them from a Struct (it assigns to a plain
// object), while the encoder, like JSON.parse, keeps them.
const json = fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
const metadata = fc.dictionary(fc.string({ unit: "grapheme" }).filter((k) => k !== "__proto__"), json, { maxKeys: 6 }) as fc.Arbitrary<Record<string, unknown>>;
const uint64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 53n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }));

const storedEvent: fc.Arbitrary<RecordedEvent> = fc.record({
  id: fc.oneof(fc.uuid(), fc.constant("")),
  type: fc.string({ unit: "grapheme", maxLength: 40 }),
  contentType: fc.constantFrom("application/json", "application/octet-stream", ""),
  data: fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    json.map((v) => new Uint8Array(Buffer.from(JSON.stringify(v) ?? "null"))),
    fc.constant(new Uint8Array(Buffer.from("{not json"))),
  ),
  metadata,
  stream: fc.string({ unit: "grapheme", maxLength: 40 }),
  revision: uint64,
  position: uint64,
  storedAt: fc.date({ min: new Date(-2e12), max: new Date(4e12), noInvalidDate: true }),
});

// An event read through a resolved link carries that link.
const recordedEvent: fc.Arbitrary<RecordedEvent> = fc.oneof(
  storedEvent,
  fc.tuple(storedEvent, storedEvent).map(([target, link]) => ({ ...target, link })),
);

/** What the reflective encoder writes for the event, with the varint length in front. */
function reflective(e: RecordedEvent, payloadAsJson: boolean): Uint8Array {
  const bytes = toBinary(RecordedEventSchema, fromRecordedEvent(e, payloadAsJson));
  const prefix: number[] = [];
  let n = bytes.byteLength;
  while (n >= 128) {
    prefix.push((n % 128) | 128);
    n = Math.floor(n / 128);
  }
  prefix.push(n);
  return new Uint8Array([...prefix, ...bytes]);
}

describe("encodeRecordedEvent", () => {
  it("writes exactly the bytes of protobuf-es's reflective encoding, for any event, with bytes or JSON payloads", () => {
    fc.assert(
      fc.property(recordedEvent, fc.boolean(), (e, payloadAsJson) => {
        expect(Buffer.from(encodeRecordedEvent(e, payloadAsJson)).toString("hex")).toBe(Buffer.from(reflective(e, payloadAsJson)).toString("hex"));
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes back to the event: every field, nested metadata and a JSON payload", () => {
    const e: RecordedEvent = {
      id: "0190f7a2-1c3b-7def-8123-456789abcdef",
      type: "Überweisung",
      contentType: "application/json",
      data: new Uint8Array(Buffer.from('{"total": 12.5, "items": [1, "two", null, true, {"x": []}]}')),
      metadata: { correlationId: "c-1", nested: { list: [1, { deep: false }], none: null }, "": "empty key" },
      stream: "account-42",
      revision: 2n ** 63n + 5n,
      position: 1234567890123n,
      storedAt: new Date("2026-11-24T14:15:08.123Z"),
    };
    const bytes = encodeRecordedEvent(e, true);
    const length = (bytes[0] & 127) + 128 * bytes[1]; // two varint bytes: 128..16383
    expect(bytes[0] & 128).toBe(128);
    expect(length).toBe(bytes.length - 2);
    const decoded = fromBinary(RecordedEventSchema, bytes.subarray(2));
    expect(decoded.payload.case).toBe("json");
    expect(toJson(ValueSchema, decoded.payload.value as Value)).toEqual({ total: 12.5, items: [1, "two", null, true, { x: [] }] });
    expect(decoded.metadata).toEqual(e.metadata);
    expect([decoded.id, decoded.type, decoded.contentType, decoded.stream]).toEqual([e.id, e.type, e.contentType, e.stream]);
    expect([decoded.revision, decoded.position]).toEqual([e.revision, e.position]);
    expect(decoded.storedAt).toEqual(expect.objectContaining({ seconds: 1795529708n, nanos: 123_000_000 }));
  });
});

describe("eventMessages", () => {
  const events = (n: number, dataBytes: number): RecordedEvent[] =>
    Array.from({ length: n }, (_, i) => ({
      id: `0190f7a2-1c3b-7def-8123-${String(i).padStart(12, "0")}`,
      type: "T",
      contentType: "application/octet-stream",
      data: new Uint8Array(dataBytes).fill(i % 256),
      metadata: { i },
      stream: `s-${i}`,
      revision: 0n,
      position: BigInt(i + 1),
      storedAt: new Date(1_700_000_000_000 + i),
    }));

  it("binary messages are byte for byte the messages built from objects, split at the byte limit", () => {
    const all = events(10, 100);
    const binary = [...eventMessages(ReadAllResponseSchema, all, { jsonCodec: false, payloadAsJson: false }, 700)];
    const objects = [...eventMessages(ReadAllResponseSchema, all, { jsonCodec: true, payloadAsJson: false }, 700)];
    // 10 events of about 210 encoded bytes: 3 to a message, the last alone.
    expect(binary.map((m) => m.$unknown?.length)).toEqual([3, 3, 3, 1]);
    const decoded = binary.map((m) => fromBinary(ReadAllResponseSchema, toBinary(ReadAllResponseSchema, m)));
    expect(decoded.flatMap((m) => m.events.map((e) => e.position))).toEqual(all.map((e) => e.position));
    expect(Buffer.concat(binary.map((m) => toBinary(ReadAllResponseSchema, m)))).toEqual(
      Buffer.concat(
        [all.slice(0, 3), all.slice(3, 6), all.slice(6, 9), all.slice(9)].map((part) =>
          toBinary(ReadAllResponseSchema, create(ReadAllResponseSchema, { events: part.map((e) => fromRecordedEvent(e, false)) })),
        ),
      ),
    );
    // The JSON codec gets real fields (toJson ignores unknown ones), split by its own estimate.
    expect(objects.flatMap((m) => m.events.map((e) => e.position))).toEqual(all.map((e) => e.position));
    expect(objects.every((m) => (m.$unknown ?? []).length === 0)).toBe(true);
  });

  it("an event larger than the limit goes alone, never dropped or split", () => {
    const all = events(3, 2000);
    const messages = [...eventMessages(EventBatchSchema, all, { jsonCodec: false, payloadAsJson: false }, 1000)];
    expect(messages.map((m) => m.$unknown?.length)).toEqual([1, 1, 1]);
    const positions = messages.flatMap((m) => fromBinary(EventBatchSchema, toBinary(EventBatchSchema, m)).events.map((e) => e.position));
    expect(positions).toEqual([1n, 2n, 3n]);
  });

  it("encodes each event once, through the given function (the subscribe handler passes its shared cache)", () => {
    const all = events(4, 10);
    const encoded = new Map<RecordedEvent, number>();
    const counting = (e: RecordedEvent, asJson: boolean) => {
      encoded.set(e, (encoded.get(e) ?? 0) + 1);
      return encodeRecordedEvent(e, asJson);
    };
    [...eventMessages(EventBatchSchema, all, { jsonCodec: false, payloadAsJson: false }, 1 << 20, counting)];
    expect([...encoded.values()]).toEqual([1, 1, 1, 1]);
  });
});

import { create, fromBinary, toBinary, type JsonObject } from "@bufbuild/protobuf";
import fc from "fast-check";
import { AppendRequestSchema, ExpectedState, MultiStreamAppendRequestSchema, type AppendRequest } from "../../gen/eventstore/v1/eventstore_pb";
import { decodeAppendRequest, decodeMultiStreamAppendRequest } from "../../src/api/append-request-decoder";

// Without "__proto__" keys, which protobuf-es cannot hold in a plain object either.
// Strings that start with a byte order mark now and then: protobuf-es drops it, Buffer keeps it.
const text = (maxLength: number) =>
  fc.oneof({ weight: 4, arbitrary: fc.string({ unit: "grapheme", maxLength }) }, fc.string({ unit: "grapheme", maxLength }).map((s) => `\uFEFF${s}`));
const json = fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes('"__proto__"'));
const metadata = fc.dictionary(text(20).filter((k) => k !== "__proto__"), fc.oneof(json, text(20)), { maxKeys: 6 }) as fc.Arbitrary<JsonObject>;

const proposedEvent = fc.record(
  {
    id: fc.oneof(fc.uuid(), text(40)),
    type: text(40),
    contentType: fc.constantFrom("application/json", "application/octet-stream", ""),
    payload: fc.option(fc.uint8Array({ maxLength: 300 }).map((value) => ({ case: "data" as const, value })), { nil: undefined }),
    metadata,
  },
  { requiredKeys: [] },
);

const expected = fc.oneof(
  fc.constant({ case: undefined }),
  fc.constantFrom(...Object.values(ExpectedState).filter((v) => typeof v === "number"), 7, -1).map((value) => ({ case: "expectedState" as const, value })),
  fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 2n ** 35n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map((value) => ({ case: "expectedRevision" as const, value })),
);

const request: fc.Arbitrary<AppendRequest> = fc
  .record({ stream: text(60), events: fc.array(proposedEvent, { maxLength: 8 }), expected })
  .map((init) => create(AppendRequestSchema, init as never));

/** protobuf-es's answer: the message, or that it throws. */
function reflective(bytes: Uint8Array): AppendRequest | "throws" {
  try {
    return fromBinary(AppendRequestSchema, bytes);
  } catch {
    return "throws";
  }
}

describe("decodeAppendRequest", () => {
  it("decodes any append with data payloads as protobuf-es does, or gives it up for a byte order mark", () => {
    fc.assert(
      fc.property(request, (message) => {
        const bytes = toBinary(AppendRequestSchema, message);
        const decoded = decodeAppendRequest(bytes);
        if (decoded === undefined) expect(Buffer.from(bytes).includes(Buffer.from("\uFEFF"))).toBe(true);
        else expect(decoded).toEqual(fromBinary(AppendRequestSchema, bytes));
      }),
      { numRuns: 1000 },
    );
  });

  it("on any damage to the bytes, either gives the request up or answers what protobuf-es answers", () => {
    fc.assert(
      fc.property(
        request,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        (message, changes, cut) => {
          const bytes = Uint8Array.from(toBinary(AppendRequestSchema, message));
          if (bytes.length === 0) return;
          for (const [at, value] of changes) bytes[at % bytes.length] = value;
          const damaged = cut === undefined ? bytes : bytes.subarray(0, cut % bytes.length);
          const decoded = decodeAppendRequest(damaged);
          if (decoded !== undefined) expect(decoded).toEqual(reflective(damaged));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("gives up what it does not handle: a json payload, an unknown field, a field given twice, invalid UTF-8, a leading byte order mark", () => {
    const bom = Uint8Array.from([0x0a, 0x04, 0xef, 0xbb, 0xbf, 0x61]); // stream: U+FEFF "a"
    expect(decodeAppendRequest(bom)).toBeUndefined();
    expect(fromBinary(AppendRequestSchema, bom).stream).toBe("a");

    const withJson = create(AppendRequestSchema, {
      stream: "s",
      events: [{ type: "T", payload: { case: "json", value: { kind: { case: "stringValue", value: "x" } } } }],
    });
    expect(decodeAppendRequest(toBinary(AppendRequestSchema, withJson))).toBeUndefined();

    const plain = toBinary(AppendRequestSchema, create(AppendRequestSchema, { stream: "s" }));
    const unknownField = Uint8Array.from([...plain, 0x78, 0x01]); // field 15, varint 1
    expect(decodeAppendRequest(unknownField)).toBeUndefined();
    expect(fromBinary(AppendRequestSchema, unknownField).stream).toBe("s");

    const streamTwice = Uint8Array.from([...plain, ...plain]);
    expect(decodeAppendRequest(streamTwice)).toBeUndefined();

    const badUtf8 = Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]); // stream: an invalid two-byte sequence
    expect(decodeAppendRequest(badUtf8)).toBeUndefined();
    expect(reflective(badUtf8)).toBe("throws");
  });

  it("decodes a multi-stream append as protobuf-es does, whole or damaged", () => {
    const multi = fc.array(request, { maxLength: 4 }).map((appends) => create(MultiStreamAppendRequestSchema, { appends }));
    fc.assert(
      fc.property(multi, fc.option(fc.nat(), { nil: undefined }), (message, cut) => {
        const whole = toBinary(MultiStreamAppendRequestSchema, message);
        const bytes = cut === undefined || whole.length === 0 ? whole : whole.subarray(0, cut % whole.length);
        const decoded = decodeMultiStreamAppendRequest(bytes);
        if (decoded === undefined) return;
        let expected: unknown = "throws";
        try {
          expected = fromBinary(MultiStreamAppendRequestSchema, bytes);
        } catch {
          // protobuf-es refuses it: the decoder must not have answered
        }
        expect(decoded).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("keeps the replacement character when it was really sent", () => {
    const message = create(AppendRequestSchema, { stream: "a\uFFFDb", events: [{ type: "T", metadata: { k: "\uFFFD" } }] });
    expect(decodeAppendRequest(toBinary(AppendRequestSchema, message))).toEqual(message);
  });
});

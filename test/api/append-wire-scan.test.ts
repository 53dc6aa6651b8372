import { create, fromBinary, toBinary, toJsonString, type JsonObject } from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  AppendRequestSchema,
  MultiStreamAppendRequestSchema,
  type AppendRequest,
} from "../../gen/eventstore/v1/eventstore_pb";
import { scanAppendRequestJson, scanMultiStreamAppendRequestJson } from "../../src/api/append-json-scan";
import { scanAppendRequest, scanMultiStreamAppendRequest } from "../../src/api/append-wire-scan";
import { toStreamAppend } from "../../src/api/proto-to-domain";
import { DEFAULT_LIMITS, isEventStoreError, validateAppends, type Limits } from "../../src/domain";

// Wire bytes built by hand, for what no encoder would write (depth past any recursion limit).
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return out;
};
const field = (number: number, body: number[]): number[] => [(number << 3) | 2, ...varint(body.length), ...body];
/**
 * A google.protobuf.Struct `levels` deep: {"a": {"a": ... {}}}. Every level is a prefix of the
 * one inside it, so the lengths are worked out from the inside and the prefixes written from
 * the outside (wrapping arrays level by level would copy them quadratically).
 */
function deepStruct(levels: number): number[] {
  const prefixes: number[][] = [];
  let inner = 0;
  for (let i = 1; i < levels; i++) {
    const value = 1 + varint(inner).length + inner; // Value { struct_value = 5 }
    const entry = 3 + 1 + varint(value).length + value; // entry { key = 1: "a"; value = 2 }
    prefixes.push([0x0a, ...varint(entry), 0x0a, 0x01, 0x61, 0x12, ...varint(value), 0x2a, ...varint(inner)]);
    inner = 1 + varint(entry).length + entry;
  }
  return prefixes.reverse().flat();
}
const appendWithMetadata = (metadata: number[]) =>
  Uint8Array.from([...field(1, [0x73, 0x2d, 0x31]), ...field(2, [...field(2, [0x54]), ...field(6, metadata)])]);

/** The field a scan refuses, or undefined if it lets the request through. */
function refused(scan: (bytes: Uint8Array, limits: Limits) => void, bytes: Uint8Array, limits: Limits = DEFAULT_LIMITS) {
  try {
    scan(bytes, limits);
    return undefined;
  } catch (e) {
    if (!isEventStoreError(e) || e.kind !== "LIMIT_EXCEEDED") throw e;
    return e.facts.field;
  }
}

const nested = (levels: number): JsonObject => {
  let value: JsonObject = {};
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
};

describe("the wire scan of an append", () => {
  it("refuses 4.8 million empty events in milliseconds, counting them without decoding", () => {
    const bytes = new Uint8Array(4_800_000 * 2);
    for (let i = 0; i < bytes.length; i += 2) bytes[i] = 0x12; // events: an empty ProposedEvent
    const started = performance.now();
    expect(refused(scanAppendRequest, bytes)).toBe("events");
    expect(performance.now() - started).toBeLessThan(500);
  });

  it("refuses metadata deeper than maxMetadataDepth at any depth past it, and lets the limit itself through", () => {
    const limit = appendWithMetadata(deepStruct(32));
    expect(refused(scanAppendRequest, limit)).toBeUndefined();
    expect(fromBinary(AppendRequestSchema, limit).events[0].metadata).toEqual(nested(32));
    for (const levels of [33, 1000, 5000]) expect(refused(scanAppendRequest, appendWithMetadata(deepStruct(levels)))).toBe("events[0].metadata");
  });

  it("names the event and field it refuses, in multi-stream appends too", () => {
    const request = (contentType: string) =>
      create(MultiStreamAppendRequestSchema, {
        appends: [
          { stream: "a-1", events: [{ type: "T" }] },
          { stream: "b-1", events: [{ type: "T" }, { type: "T", contentType }] },
        ],
      });
    const limits = { ...DEFAULT_LIMITS, maxContentTypeLength: 10 };
    expect(refused(scanMultiStreamAppendRequest, toBinary(MultiStreamAppendRequestSchema, request("x".repeat(10))), limits)).toBeUndefined();
    const tooLong = request("x".repeat(11));
    expect(refused(scanMultiStreamAppendRequest, toBinary(MultiStreamAppendRequestSchema, tooLong), limits)).toBe("appends[1].events[1].content_type");
    expect(refused(scanMultiStreamAppendRequestJson, Buffer.from(toJsonString(MultiStreamAppendRequestSchema, tooLong)), limits)).toBe("appends[1].events[1].content_type");
  });

  it("counts every metadata value, and refuses a json payload nested too deep", () => {
    const limits = { ...DEFAULT_LIMITS, maxMetadataValues: 3, maxAppendJsonValues: 5 };
    const three = { a: [1, 2] }; // a member and two elements
    const ok = create(AppendRequestSchema, { stream: "s-1", events: [{ type: "T", metadata: three }] });
    expect(refused(scanAppendRequest, toBinary(AppendRequestSchema, ok), limits)).toBeUndefined();
    const four = create(AppendRequestSchema, { stream: "s-1", events: [{ type: "T", metadata: { a: [1, 2], b: null } }] });
    expect(refused(scanAppendRequest, toBinary(AppendRequestSchema, four), limits)).toBe("events[0].metadata");
    const six = create(AppendRequestSchema, { stream: "s-1", events: [{ type: "T", metadata: three }, { type: "T", metadata: three }] });
    expect(refused(scanAppendRequest, toBinary(AppendRequestSchema, six), limits)).toBe("events");

    const deepJson = Buffer.from(`{"stream":"s-1","events":[{"type":"T","json":${"[".repeat(33)}${"]".repeat(33)}}]}`);
    expect(refused(scanAppendRequestJson, deepJson)).toBe("events[0].json");
  });

  it("counts values the request does not define, which JSON.parse builds all the same", () => {
    const junk = Buffer.from(`{"stream":"s-1","junk":[${new Array(100_001).fill("0").join(",")}],"events":[]}`);
    expect(refused(scanAppendRequestJson, junk)).toBe("events");
  });

  it("refuses an event whose data alone passes maxEventBytes, before reading its metadata", () => {
    const request = create(AppendRequestSchema, { stream: "s-1", events: [{ type: "T", payload: { case: "data", value: new Uint8Array(2000) } }] });
    const limits = { ...DEFAULT_LIMITS, maxEventBytes: 1000 };
    expect(refused(scanAppendRequest, toBinary(AppendRequestSchema, request), limits)).toBe("events[0]");
    expect(refused(scanAppendRequestJson, Buffer.from(toJsonString(AppendRequestSchema, request)), limits)).toBe("events[0]");
  });

  // Small limits, so that random requests pass and fail them.
  const limits: Limits = {
    ...DEFAULT_LIMITS,
    maxAppendEvents: 4,
    maxContentTypeLength: 8,
    maxMetadataDepth: 3,
    maxMetadataValues: 6,
    maxAppendJsonValues: 12,
    maxEventBytes: 300,
    maxAppendBytes: 900,
  };
  // Valid but for the limits: then validation refuses with a limit whatever it checks first.
  const json = fc.jsonValue({ maxDepth: 4 }).filter((v) => !/__proto__|\\u0000/.test(JSON.stringify(v)));
  const request: fc.Arbitrary<AppendRequest> = fc
    .record({
      stream: fc.stringMatching(/^[a-z]{1,10}-[0-9]{1,3}$/),
      events: fc.array(
        fc.record({
          type: fc.stringMatching(/^[A-Za-z]{1,20}$/),
          contentType: fc.constantFrom("", "application/json", "text/plain", "x".repeat(9)),
          payload: fc.option(fc.uint8Array({ maxLength: 200 }).map((value) => ({ case: "data" as const, value })), { nil: undefined }),
          metadata: fc.dictionary(fc.stringMatching(/^[a-z]{0,8}$/).filter((k) => k !== "__proto__"), json, { maxKeys: 4 }) as fc.Arbitrary<JsonObject>,
        }),
        { minLength: 1, maxLength: 6 },
      ),
    })
    .map((init) => create(AppendRequestSchema, init as never));

  it("refuses only what validation after decoding refuses, and the same field, binary or JSON", () => {
    fc.assert(
      fc.property(request, (message) => {
        const binary = refused(scanAppendRequest, toBinary(AppendRequestSchema, message), limits);
        const text = refused(scanAppendRequestJson, Buffer.from(toJsonString(AppendRequestSchema, message)), limits);
        // JSON's data is base64: its bytes are a lower bound there, exact on the wire.
        if (binary === undefined || !/^events\[\d+\]$|^events$/.test(binary)) expect(text).toBe(binary);
        if (binary === undefined) return;
        let validated: string | undefined;
        try {
          validateAppends([toStreamAppend(message)], limits, false);
        } catch (e) {
          if (!isEventStoreError(e)) throw e;
          validated = e.kind;
        }
        // Validation checks fields in its own order, and may find another limit first.
        expect(validated).toBe("LIMIT_EXCEEDED");
      }),
      { numRuns: 1000 },
    );
  });
});

import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AppendRequestSchema } from "../gen/eventstore/v1/eventstore_pb";
import { decodeAppendRequest } from "../src/api/append-request-decoder";
import { createEvents } from "./payload";

/**
 * How long decoding an AppendRequest of 1 and of 100 benchmark events takes: protobuf-es's
 * reflective fromBinary against the hand-written decoder the server uses.
 *   node dist/bench/decode-append.js
 */
function main(): void {
  for (const [events, iterations] of [
    [1, 50_000],
    [100, 2_000],
  ]) {
    const request = create(AppendRequestSchema, {
      stream: "order-1",
      events: createEvents(events, 0).map((e) => ({
        id: e.id,
        type: e.type,
        contentType: e.contentType,
        payload: { case: "data" as const, value: e.data },
        metadata: e.metadata,
      })),
      expected: { case: "expectedRevision", value: 5n },
    });
    const bytes = toBinary(AppendRequestSchema, request);
    if (decodeAppendRequest(bytes) === undefined) throw new Error("the decoder gave the request up");
    const time = (decode: (b: Uint8Array) => unknown) => {
      for (let i = 0; i < iterations / 10; i++) decode(bytes);
      const started = performance.now();
      for (let i = 0; i < iterations; i++) decode(bytes);
      return ((performance.now() - started) / iterations) * 1000;
    };
    const reflective = time((b) => fromBinary(AppendRequestSchema, b));
    const handWritten = time(decodeAppendRequest);
    process.stdout.write(
      `${events} event(s), ${bytes.byteLength} bytes: protobuf-es ${reflective.toFixed(1)} µs, hand-written ${handWritten.toFixed(1)} µs\n`,
    );
  }
}

main();

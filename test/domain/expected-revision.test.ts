import fc from "fast-check";
import { expectedRevisionFromSql, expectedRevisionToSql, satisfies, type ActualRevision, type ExpectedRevision } from "../../src/domain";

const revision = fc.bigInt({ min: 0n, max: (1n << 63n) - 1n });
const expected: fc.Arbitrary<ExpectedRevision> = fc.oneof(fc.constantFrom("any", "no_stream", "stream_exists"), revision);
const actual: fc.Arbitrary<ActualRevision> = fc.oneof(fc.constant("none" as const), revision);

describe("expected revisions", () => {
  it("any accepts every state; no_stream only none; stream_exists anything but none", () => {
    fc.assert(
      fc.property(actual, (a) => {
        expect(satisfies("any", a)).toBe(true);
        expect(satisfies("no_stream", a)).toBe(a === "none");
        expect(satisfies("stream_exists", a)).toBe(a !== "none");
      }),
    );
  });

  it("an exact revision accepts exactly that revision", () => {
    fc.assert(fc.property(revision, actual, (e, a) => expect(satisfies(e, a)).toBe(a === e)));
  });

  it("round-trips through the SQL encoding without colliding", () => {
    fc.assert(fc.property(expected, (e) => expect(expectedRevisionFromSql(expectedRevisionToSql(e))).toBe(e)));
    fc.assert(
      fc.property(expected, expected, (a, b) => {
        if (a !== b) expect(expectedRevisionToSql(a)).not.toBe(expectedRevisionToSql(b));
      }),
    );
  });
});

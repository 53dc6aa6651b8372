import fc from "fast-check";
import { categoryOf, EventStoreError, MAX_STREAM_NAME_LENGTH, validateStreamName } from "../../src/domain";

const printable = fc.string({ unit: "grapheme", minLength: 1, maxLength: 64 }).filter((s) => !/[\u0000-\u001f\u007f-\u009f]/.test(s));

describe("stream names", () => {
  it("accepts every name of 1..256 characters without control characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", minLength: 1, maxLength: MAX_STREAM_NAME_LENGTH }), (raw) => {
        const name = raw.replace(/[\u0000-\u001f\u007f-\u009f]/g, "x");
        if ([...name].length > MAX_STREAM_NAME_LENGTH) return;
        expect(validateStreamName(name)).toBe(name);
      }),
    );
  });

  it("refuses any name with a control character, naming the field", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0, max: 0x1f }), fc.string(), (a, code, b) => {
        const err = (() => {
          try {
            validateStreamName(a + String.fromCharCode(code) + b, "appends[3].stream");
          } catch (e) {
            return e as EventStoreError;
          }
        })();
        expect(err?.kind).toBe("INVALID_ARGUMENT");
        expect(err?.facts.field).toBe("appends[3].stream");
      }),
    );
  });

  it("counts characters, not UTF-16 units or bytes", () => {
    expect(validateStreamName("😀".repeat(256))).toHaveLength(512);
    expect(() => validateStreamName("😀".repeat(257))).toThrow(/at most 256/);
    expect(() => validateStreamName("")).toThrow(/must not be empty/);
  });

  it("the category is the part before the first dash", () => {
    fc.assert(
      fc.property(printable.filter((s) => !s.includes("-")), fc.string(), (category, rest) => {
        expect(categoryOf(`${category}-${rest}`)).toBe(category);
        expect(categoryOf(category)).toBe(category);
      }),
    );
  });
});

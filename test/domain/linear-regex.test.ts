import fc from "fast-check";
import { RE2JS } from "re2js";
import { DEFAULT_LIMITS, EventStoreError, validateFilter, type EventFilter, type Limits, type RecordedEvent } from "../../src/domain";
import { matchesFilter } from "../../src/domain/event-matcher";
import { regexSizeBound } from "../../src/domain/regex-size-bound";

function recorded(metadata: RecordedEvent["metadata"]): RecordedEvent {
  return {
    id: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    type: "Opened",
    contentType: "application/json",
    data: new Uint8Array(),
    metadata,
    stream: "account-1",
    revision: 0n,
    position: 1n,
    storedAt: new Date("2024-05-01T12:00:00Z"),
  };
}

const regexFilter = (pattern: string, limits: Limits = DEFAULT_LIMITS): EventFilter =>
  validateFilter({ eventTypes: [], matchers: [{ field: { metadataKey: "k" }, operator: "regex", value: pattern }] }, limits);

function refusal(pattern: string, limits: Limits = DEFAULT_LIMITS): EventStoreError | undefined {
  try {
    regexFilter(pattern, limits);
  } catch (e) {
    return e as EventStoreError;
  }
  return undefined;
}

/** The fastest of a few runs, in milliseconds: the machine is shared, the engine's cost is the floor. */
function fastest(run: () => void, runs = 5): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    run();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

describe("regular expressions run in linear time", () => {
  // JavaScript's RegExp takes 23 s for the first of these and never finishes the others.
  it.each([
    ["(a+)+$", "a".repeat(30) + "b", 1],
    ["(a+)+$", "a".repeat(100_000) + "b", 5],
    ["(x+x+)+y", "x".repeat(100_000), 5],
    ["(.*a){20}$", "a".repeat(100_000) + "b", 5],
  ])("%s against %#: well under a few ms", (pattern, subject, ms) => {
    const filter = regexFilter(pattern);
    const event = recorded({ k: subject });
    expect(matchesFilter(filter, event)).toBe(false);
    expect(fastest(() => matchesFilter(filter, event))).toBeLessThan(ms);
  });

  it("match a 1 MB value in tens of milliseconds", () => {
    const filter = regexFilter("(a+)+$");
    const event = recorded({ k: "a".repeat(1 << 20) + "b" });
    expect(fastest(() => matchesFilter(filter, event), 3)).toBeLessThan(100);
  });

  it("compile once per matcher, at validation, not per event", () => {
    const compile = jest.spyOn(RE2JS, "compile");
    try {
      const filter = regexFilter("^t[12]$");
      validateFilter(filter, DEFAULT_LIMITS); // the API and the store both validate
      for (let i = 0; i < 1000; i++) matchesFilter(filter, recorded({ k: `t${i % 3}` }));
      expect(compile).toHaveBeenCalledTimes(1);
    } finally {
      compile.mockRestore();
    }
  });
});

describe("what RE2 cannot parse is refused with its message, naming the field", () => {
  it.each([
    ["a backreference", "(a)\\1", "invalid escape sequence: `\\1`"],
    ["a named backreference", "(?<n>a)\\k<n>", "invalid escape sequence: `\\k`"],
    ["a lookahead", "a(?=b)", "`(?=`"],
    ["a negative lookahead", "a(?!b)", "`(?!`"],
    ["a lookbehind", "(?<=a)b", "invalid named capture"],
    ["possessive repetition", "a++", "invalid nested repetition operator"],
    ["an atomic group", "(?>a)", "`(?>`"],
    ["an unclosed group", "(a", "missing closing )"],
    ["a repeat count over 1000", "a{1001}", "invalid repeat count"],
    ["an unknown class", "\\p{Klingon}", "invalid character class range"],
  ])("%s", (_, pattern, message) => {
    const e = refusal(pattern);
    expect(e?.kind).toBe("INVALID_ARGUMENT");
    expect(e?.facts.field).toBe("filter.matchers[0].value");
    expect(e?.message).toContain(message);
  });
});

describe("the size of a regular expression is limited", () => {
  it("to maxRegexLength characters", () => {
    const limits = { ...DEFAULT_LIMITS, maxRegexLength: 10 };
    expect(refusal("a".repeat(10), limits)).toBeUndefined();
    const e = refusal("a".repeat(11), limits);
    expect(e).toMatchObject({ kind: "LIMIT_EXCEEDED", facts: { field: "filter.matchers[0].value", limit: "10", value: "11" } });
  });

  it("to maxRegexInstructions, refused before compiling", () => {
    const limits = { ...DEFAULT_LIMITS, maxRegexLength: 2000 };
    // Compiling this one would take about a second: 156,000 instructions.
    const huge = "(?:.{0,1000})".repeat(78);
    const started = performance.now();
    const e = refusal(huge, limits);
    expect(performance.now() - started).toBeLessThan(50);
    expect(e).toMatchObject({ kind: "LIMIT_EXCEEDED", facts: { field: "filter.matchers[0].value", limit: String(DEFAULT_LIMITS.maxRegexInstructions) } });
    expect(refusal(".{0,100}")).toBeUndefined();
    expect(refusal(".{0,200}")?.kind).toBe("LIMIT_EXCEEDED");
  });

  it("to maxRegexInstructions for all of a filter's regular expressions together", () => {
    const compile = jest.spyOn(RE2JS, "compile");
    try {
      const matchers = [".{0,100}", ".{0,100}"].map((value) => ({ field: { metadataKey: "k" }, operator: "regex" as const, value }));
      let e: EventStoreError | undefined;
      try {
        validateFilter({ eventTypes: [], matchers }, DEFAULT_LIMITS);
      } catch (err) {
        e = err as EventStoreError;
      }
      expect(e).toMatchObject({ kind: "LIMIT_EXCEEDED", facts: { field: "filter.matchers[1].value", limit: String(DEFAULT_LIMITS.maxRegexInstructions) } });
      expect(compile).not.toHaveBeenCalled();
    } finally {
      compile.mockRestore();
    }
  });

  it("allows the patterns people write", () => {
    for (const p of ["^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", "\\w{3,64}", "(?i)^(order|payment|shipment)-\\d+$", "[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}"]) {
      expect(refusal(p)).toBeUndefined();
    }
  });

  it("counts counted repetition inside escapes, classes and \\Q...\\E as no repetition", () => {
    for (const p of ["\\x{1000}", "[{1000}]", "\\Q{1000}\\E", "\\p{Greek}"]) expect(regexSizeBound(p)).toBeLessThan(12);
  });
});

describe("regexSizeBound", () => {
  // Patterns from a grammar of RE2's constructs, nested and repeated.
  const atom = fc.constantFrom(
    "a", "é", "😀", ".", "\\d", "\\pL", "\\PN", "[a-c]", "[^x]", "[\\d\\s-]", "\\x{41}", "\\x{1F600}", "^", "$", "\\b", "\\B", "\\A", "\\z",
    "\\Qa.b\\E", "\\Q\\E", "[[:alpha:]]", "[]a]", "[^]-]", "[\\x{41}-\\x{5A}]", "\\{", "x{,3}", "{", "(?:)", "(?i)k", "",
  );
  const quantifier = fc.constantFrom("", "", "*", "+", "?", "*?", "+?", "??", "{0}", "{1}", "{2}", "{0,1}", "{0,3}", "{0,}", "{1,}", "{2,}", "{1,12}", "{3,5}?");
  const pattern: fc.Arbitrary<string> = fc.letrec<{ re: string }>((tie) => ({
    re: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.tuple(atom, quantifier).map(([a, q]) => a + q),
      fc.array(tie("re"), { minLength: 1, maxLength: 4 }).map((xs) => xs.join("")),
      fc.tuple(fc.constantFrom("(", "(?:", "(?i:", "(?s-i:", "(?P<g>", "(?<g>"), fc.array(tie("re"), { minLength: 1, maxLength: 3 }), quantifier)
        .map(([open, xs, q]) => `${open}${xs.join("|")})${q}`),
      tie("re").map((x) => `(?i)${x}`),
      fc.array(tie("re"), { minLength: 2, maxLength: 3 }).map((xs) => xs.join("|")),
    ),
  })).re;

  it("never counts fewer instructions than RE2 compiles", () => {
    let compiled = 0;
    fc.assert(
      fc.property(pattern, (p) => {
        let actual: number;
        try {
          actual = RE2JS.compile(p).matcher("").programSize();
        } catch {
          return; // RE2 refuses it anyway (duplicate group names, say)
        }
        compiled++;
        expect(regexSizeBound(p)).toBeGreaterThanOrEqual(actual);
      }),
      { numRuns: Number(process.env.REGEX_BOUND_RUNS ?? 2000) },
    );
    expect(compiled).toBeGreaterThan(1000);
  });

  it("is close for plain patterns", () => {
    for (const p of ["^t[12]$", "\\w{3,64}", "(?:[ab]{1000})", "(((a{10}){10}){10})"]) {
      const actual = RE2JS.compile(p).matcher("").programSize();
      expect(regexSizeBound(p)).toBeLessThanOrEqual(actual * 1.1 + 10);
    }
  });
});

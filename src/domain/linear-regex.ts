import { RE2JS, RE2JSException } from "re2js";
import { invalidArgument, limitExceeded } from "./errors";
import type { Limits } from "./limits";
import { regexSizeBound } from "./regex-size-bound";

/** A compiled filter pattern. */
export interface LinearRegex {
  /** Whether the pattern matches anywhere in the subject (unless the pattern anchors itself). */
  test(subject: string): boolean;
}

export type RegexLimits = Pick<Limits, "maxRegexLength" | "maxRegexInstructions">;

/**
 * Compiles a filter's regular expression in RE2 syntax with re2js, whose matching takes time
 * linear in the subject: no pattern can backtrack, so none can stall the event loop the way
 * `(a+)+$` does in JavaScript's RegExp. Linear is still proportional to the program's size
 * when RE2 falls back from its DFA to its NFA, so the program is bounded too (before it is
 * compiled: see regex-size-bound.ts); docs/regex-engine.md has the measurements. Throws
 * LIMIT_EXCEEDED for a pattern too long or too large and INVALID_ARGUMENT, with RE2's own
 * message, for one it cannot parse (backreferences, lookaround, possessive repetition...).
 */
export function compileLinearRegex(pattern: string, limits: RegexLimits, field: string): LinearRegex {
  checkRegexSize(pattern, limits, field);
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(pattern);
  } catch (e) {
    if (e instanceof RE2JSException) throw invalidArgument(field, `invalid regular expression (RE2 syntax): ${e.message}`);
    throw e;
  }
  // The bound can only over-count; this keeps that promise checked.
  const instructions = compiled.matcher("").programSize();
  if (instructions > limits.maxRegexInstructions) throw tooLarge(field, limits, instructions);
  return compiled;
}

/** The checks on a pattern that need no compiling, its length and its program's bound; returns the bound. */
export function checkRegexSize(pattern: string, limits: RegexLimits, field: string): number {
  if (pattern.length > limits.maxRegexLength) {
    throw limitExceeded(field, String(limits.maxRegexLength), String(pattern.length),
      `a regular expression has at most ${limits.maxRegexLength} characters (got ${pattern.length})`);
  }
  const bound = regexSizeBound(pattern);
  if (bound > limits.maxRegexInstructions) throw tooLarge(field, limits, bound);
  return bound;
}

function tooLarge(field: string, limits: RegexLimits, size: number) {
  return limitExceeded(field, String(limits.maxRegexInstructions), String(size),
    `a regular expression compiles to at most ${limits.maxRegexInstructions} RE2 instructions (this one to up to ${size}: counted repetition such as x{100} repeats x)`);
}

/**
 * An upper bound on the number of instructions RE2 compiles a pattern to, read from its text
 * without compiling it. Counted repetition is what makes a short pattern large (`(?:.{0,1000})`
 * is 13 characters and 2,000 instructions), and compiling costs time in proportion to the
 * program, so a pattern too large must be refused before it is compiled. Each construct is
 * counted at least as RE2's simplifier expands it: x{n,m} is n copies of x and m - n copies of
 * x?; every group is counted as capturing. Text this scan misreads (an unclosed class, a stray
 * parenthesis) is a syntax error that the compiler reports next.
 */
export function regexSizeBound(pattern: string): number {
  // One frame per open group: the group's size so far, and the size of its last atom (what a
  // quantifier repeats).
  const frames = [{ total: 0, last: 0 }];
  const top = () => frames[frames.length - 1];
  const atom = (size: number) => {
    top().total += size;
    top().last = size;
  };
  const repeat = (size: number) => {
    const f = top();
    f.total += size - f.last;
    f.last = size;
  };
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i];
    if (c === "\\") {
      if (pattern[i + 1] === "Q") {
        const end = pattern.indexOf("\\E", i + 2);
        const literal = end < 0 ? pattern.length - i - 2 : end - i - 2;
        // A quantifier after \E repeats only the last character. An empty one is nothing, like
        // a flags group: a quantifier after either repeats the atom before.
        if (literal > 0) {
          top().total += literal - 1;
          atom(1);
        }
        i = end < 0 ? pattern.length : end + 2;
      } else {
        atom(1);
        i = afterEscape(pattern, i);
      }
    } else if (c === "[") {
      atom(1);
      i = afterClass(pattern, i);
    } else if (c === "(") {
      const head = pattern.slice(i, i + 64);
      const flagsOnly = /^\(\?[a-zA-Z-]*\)/.exec(head);
      if (flagsOnly) {
        i += flagsOnly[0].length;
      } else {
        frames.push({ total: 0, last: 0 });
        // (?:, (?i:, (?P<name> and (?<name> open a group; their heads are no atoms.
        i += /^\((?:\?[a-zA-Z-]*:|\?P?<\w*>)?/.exec(head)![0].length;
      }
    } else if (c === ")") {
      if (frames.length > 1) {
        // Its two captures, around what it holds, or around the empty match it compiles to.
        const group = Math.max(frames.pop()!.total, 1) + 2;
        atom(group);
      }
      i++;
    } else if (c === "|") {
      // The alternation, and the empty match an empty branch compiles to.
      top().total += 2;
      top().last = 0;
      i++;
    } else if (c === "*" || c === "+" || c === "?") {
      // x* of an x that can match empty compiles as (x+)?: two instructions more.
      repeat(top().last + (c === "*" ? 2 : 1));
      i++;
    } else if (c === "{") {
      const counted = /^\{(\d{1,7})(?:(,)(\d{0,7}))?\}/.exec(pattern.slice(i, i + 18));
      const min = Number(counted?.[1]);
      const upper = counted?.[3] ? Number(counted[3]) : min;
      // A count over 1000 (or backwards) is RE2's syntax error, which its parser reports
      // before it expands anything: no cost to bound.
      if (counted && upper <= 1000 && min <= upper) {
        const max = counted[2] && !counted[3] ? min + 1 : upper;
        const x = top().last;
        // One more for x{0,} of an x that can match empty, which is x* (see below).
        repeat(min * x + (max - min) * (x + 1) + 1);
        i += counted[0].length;
      } else {
        atom(1);
        i++;
      }
    } else {
      atom(1);
      i++;
    }
  }
  // The unclosed groups of a pattern that will not compile still count; so do the program's
  // start, its whole-match capture and its match instruction.
  return frames.reduce((n, f) => n + f.total, 0) + 4;
}

/** The index after the escape at `i`: \x{...}, \p{...} and \P{...} hold braces that are no count. */
function afterEscape(pattern: string, i: number): number {
  const kind = pattern[i + 1];
  if ((kind === "x" || kind === "p" || kind === "P") && pattern[i + 2] === "{") {
    const end = pattern.indexOf("}", i + 3);
    return end < 0 ? pattern.length : end + 1;
  }
  return Math.min(i + 2, pattern.length);
}

/** The index after the class that opens at `i`, read as RE2 reads it: a leading ] is literal. */
function afterClass(pattern: string, i: number): number {
  let j = i + 1;
  if (pattern[j] === "^") j++;
  if (pattern[j] === "]") j++;
  while (j < pattern.length) {
    const c = pattern[j];
    if (c === "]") return j + 1;
    if (c === "\\") j = afterEscape(pattern, j);
    else if (c === "[" && pattern[j + 1] === ":") {
      const end = pattern.indexOf(":]", j + 2);
      j = end < 0 ? j + 1 : end + 2;
    } else j++;
  }
  return j;
}

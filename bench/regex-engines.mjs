// Compares regular expression engines for filters: JavaScript's RegExp (backtracking, for
// reference), re2js (the one src/domain/linear-regex.ts uses) and re2-wasm (when installed:
// `npm install --no-save re2-wasm@1.0.2`). Each engine runs each group of cases in a child
// process of its own, so that an engine that aborts cannot spoil the next measurement. One JSON
// line per measurement on stdout; docs/regex-engine.md has the figures.
//
//   node --expose-gc bench/regex-engines.mjs [--engine NAME --group GROUP]
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const ENGINES = {
  RegExp: () => (p) => {
    const r = new RegExp(p, "u");
    return { test: (s) => r.test(s) };
  },
  re2js: () => {
    const { RE2JS } = require("re2js");
    return (p) => {
      const r = RE2JS.compile(p);
      return { test: (s) => r.test(s), size: () => r.matcher("").programSize() };
    };
  },
  "re2-wasm": () => {
    const { RE2 } = require("re2-wasm");
    return (p) => {
      const r = new RE2(p, "u");
      return { test: (s) => r.test(s) };
    };
  },
};

const GROUPS = ["typical", "compile", ...Array.from({ length: 9 }, (_, i) => `worst${i}`), "syntax", "memory"];
const args = process.argv.slice(2);
if (args[0] !== "--engine") {
  for (const name of Object.keys(ENGINES)) {
    for (const group of GROUPS) {
      const argv = ["--expose-gc", fileURLToPath(import.meta.url), "--engine", name, "--group", group];
      const child = spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 300_000 });
      process.stdout.write(child.stdout);
      if (child.status !== 0) console.log(JSON.stringify({ engine: name, group, exit: child.status ?? child.signal }));
    }
  }
  process.exit(0);
}

const engine = args[1];
const group = args[3];
let compile;
try {
  compile = ENGINES[engine]();
} catch (e) {
  console.log(JSON.stringify({ engine, unavailable: e.message.split("\n")[0] }));
  process.exit(0);
}
const out = (o) => console.log(JSON.stringify({ engine, ...o }));
/** Median milliseconds of `run`, repeated until each sample lasts a few milliseconds. */
function time(run) {
  const t0 = performance.now();
  run();
  const once = performance.now() - t0;
  if (once > 100) return once;
  const n = Math.max(1, Math.ceil(5 / Math.max(once, 1e-4)));
  const samples = [];
  for (let s = 0; s < 7; s++) {
    const t = performance.now();
    for (let i = 0; i < n; i++) run();
    samples.push((performance.now() - t) / n);
  }
  return samples.sort((a, b) => a - b)[3];
}
const round = (ms) => Number(ms.toPrecision(3));
const ab = (n, seed = 7) => {
  let x = seed;
  let s = "";
  while (s.length < n) s += ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) & 1 ? "a" : "b";
  return s;
};
// Random a/b text whose 1001st character before every c is a b: [ab]*a[ab]{k}c never matches.
const noMatch = (n, k) => {
  let s = "";
  while (s.length < n) s += ab(3000, s.length + 1) + "b" + ab(k, s.length + 2) + "c";
  return s;
};
function attempt(what, run) {
  try {
    return run();
  } catch (e) {
    out({ ...what, error: String(e.message).split("\n")[0].slice(0, 120) });
    return undefined;
  }
}

for (let i = 0; i < 300; i++) attempt({}, () => compile(`^w${i % 7}[a-z]+$`).test("wxyz")); // warm up

const TYPICAL = [
  ["^t[12]$", "t1"],
  ["^tenant-\\d+$", "tenant-4711"],
  ["@example\\.com$", "someone.else@example.com"],
  ["^[0-9a-f]{8}-", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"],
  ["(?i)checkout|payment", "web-frontend/orders/Checkout-v2"],
  ["\\p{Lu}", "ärger über straße"],
];
for (const [pattern, subject] of group === "typical" ? TYPICAL : []) {
  attempt({ case: "typical", pattern }, () => {
    const compileMs = time(() => compile(pattern));
    const re = compile(pattern);
    out({ case: "typical", pattern, compileUs: round(compileMs * 1000), matchUs: round(time(() => re.test(subject)) * 1000), size: re.size?.() });
  });
}
for (const pattern of group === "compile" ? ["[a-z]{1,1000}", "(?:.{0,1000})".repeat(8)] : []) {
  attempt({ case: "compile", pattern: pattern.slice(0, 40) }, () => out({ case: "compile", pattern: pattern.slice(0, 40), chars: pattern.length, compileMs: round(time(() => compile(pattern))), size: compile(pattern).size?.() }));
}

const EXPONENTIAL = /\+\)\+/;
const WORST_CASES = [
  ["(a+)+$", () => "a".repeat(30) + "b"],
  ["(a+)+$", () => "a".repeat(100_000) + "b"],
  ["(a+)+$", () => "a".repeat(1 << 20) + "b"],
  ["(x+x+)+y", () => "x".repeat(100_000)],
  ["(x+x+)+y", () => "x".repeat(1 << 20)],
  ["\\p{L}{50}$", () => "é".repeat(1 << 20) + "1"],
  ["[ab]*a[ab]{20}c", () => noMatch(1 << 16, 20)],
  ["[ab]*a[ab]{100}c", () => noMatch(1 << 16, 100)],
  ["[ab]*a[ab]{250}c", () => noMatch(1 << 16, 250)],
];
const WORST = WORST_CASES.filter((_, i) => group === `worst${i}`).map(([pattern, subject]) => [pattern, subject()]);
for (const [pattern, subject] of WORST) {
  const what = { case: "worst", pattern, subjectChars: subject.length };
  if (engine === "RegExp" && EXPONENTIAL.test(pattern) && subject.length > 25) {
    out({ ...what, skipped: "exponential: 23 s at 31 characters" });
    continue;
  }
  attempt(what, () => {
    const re = compile(pattern);
    // The first match pays for building the DFA's states; a filter's next events reuse them.
    const t = performance.now();
    const matched = re.test(subject);
    const firstMs = performance.now() - t;
    out({ ...what, firstMs: round(firstMs), matchMs: round(time(() => re.test(subject))), matched, size: re.size?.() });
  });
}

const REFUSED = ["(a)\\1", "(?<n>a)\\k<n>", "a(?=b)", "a(?!b)", "(?<=a)b", "(?<!a)b", "a++", "(?>a)", "\\u0041", "\\x{41}", "(?i)a", "a{1001}"];
const refuses = (p) => {
  try {
    compile(p);
    return false;
  } catch {
    return true;
  }
};
if (group === "syntax") {
  out({ case: "syntax", refused: REFUSED.filter(refuses), accepted: REFUSED.filter((p) => !refuses(p)) });
  out({ case: "unicode", dotIsCodePoint: attempt({}, () => compile("^.$").test("😀")), loneSurrogateSubject: attempt({}, () => compile("x").test("\uD800x")) });
}

// Memory: 20,000 compiled patterns, dropped, with a 1 MiB subject matched after.
if (group === "memory") attempt({ case: "memory" }, () => {
  const before = process.memoryUsage();
  let compiled = 0;
  for (; compiled < 20_000; compiled++) {
    if (attempt({ case: "memory", compiled }, () => compile(`^p${compiled}[a-z]{2,8}$`).test(`p${compiled}abc`)) === undefined) break;
  }
  globalThis.gc?.();
  const after = process.memoryUsage();
  const ok = compile("a+b$").test("a".repeat(1 << 20) + "b");
  out({ case: "memory", compiled, rssGrowthMB: Math.round((after.rss - before.rss) / 2 ** 20), thenMatches1MiB: ok });
});

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { settingsList } from "../../src/server/config";

/** The README's configuration table lists every setting the server reads, with its default. */
const readme = readFileSync(join(__dirname, "../../README.md"), "utf8");
const rows = new Map(
  [...readme.matchAll(/^\| `(--[a-z0-9-]+)` \| `([A-Z0-9_]+)` \| ([^|]*) \|/gm)].map((m) => [m[1], { env: m[2], default: m[3].trim() }]),
);

test.each(settingsList().map((s) => [s.flag, s] as const))("%s is in the README with its variable and default", (_flag, s) => {
  expect(rows.get(s.flag)).toEqual({ env: s.env, default: s.default === "" ? "(none)" : `\`${s.default}\`` });
});

test("the README lists no setting the server does not read", () => {
  const flags = new Set(settingsList().map((s) => s.flag));
  expect([...rows.keys()].filter((f) => !flags.has(f))).toEqual([]);
});

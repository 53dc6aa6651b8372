import { ConfigError, loadConfig, usage } from "../../src/server/config";

describe("the statement timeout setting", () => {
  it("defaults to 30 s, and is set by --statement-timeout-ms or STATEMENT_TIMEOUT_MS (the flag wins)", () => {
    expect(loadConfig([], {}).statementTimeoutMs).toBe(30_000);
    expect(loadConfig([], { STATEMENT_TIMEOUT_MS: "1500" }).statementTimeoutMs).toBe(1500);
    expect(loadConfig(["--statement-timeout-ms", "0"], { STATEMENT_TIMEOUT_MS: "1500" }).statementTimeoutMs).toBe(0);
  });

  it("refuses what PostgreSQL would not take, naming the setting", () => {
    for (const bad of ["-1", "1.5", "2147483648", "soon"]) {
      expect(() => loadConfig([`--statement-timeout-ms=${bad}`], {})).toThrow(ConfigError);
      expect(() => loadConfig([], { STATEMENT_TIMEOUT_MS: bad })).toThrow(/--statement-timeout-ms \(STATEMENT_TIMEOUT_MS\)/);
    }
  });

  it("is in --help with its default", () => {
    expect(usage()).toMatch(/--statement-timeout-ms\s+STATEMENT_TIMEOUT_MS\s+.*\(default 30000\)/);
  });
});

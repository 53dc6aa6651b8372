import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { createMetrics } from "../../src/metrics";

// deploy/'s Grafana dashboard and Prometheus alert rules query only series the server exports:
// a renamed metric fails here, not on an operator's empty panel.

const deploy = (file: string) => readFileSync(join(__dirname, "../../deploy", file), "utf8");

/** Every series name a scrape of the server can hold (a histogram's three included). */
async function exportedSeries(): Promise<Set<string>> {
  const text = await createMetrics({ process: true }).registry.metrics();
  const names = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === "histogram") for (const suffix of ["_bucket", "_sum", "_count"]) names.add(name + suffix);
    else names.add(name);
  }
  return names;
}

/** The metric names a PromQL expression reads: identifiers of our prefixes, outside label matchers' values. */
function queriedMetrics(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  return [...withoutStrings.matchAll(/\b(?:eventstore|nodejs|process)_[a-zA-Z0-9_]+/g)].map((m) => m[0]);
}

test("every query of the Grafana dashboard names metrics the server exports", async () => {
  const series = await exportedSeries();
  const dashboard = JSON.parse(deploy("grafana-dashboard.json")) as { panels: { title: string; targets: { expr: string }[] }[] };
  expect(dashboard.panels.length).toBeGreaterThanOrEqual(10);
  for (const panel of dashboard.panels) {
    expect(panel.targets.length).toBeGreaterThan(0);
    for (const { expr } of panel.targets) {
      const names = queriedMetrics(expr);
      expect(names.length).toBeGreaterThan(0);
      for (const name of names) expect({ panel: panel.title, name, exported: series.has(name) }).toEqual({ panel: panel.title, name, exported: true });
    }
  }
});

test("every alert rule names metrics the server exports, and the alerts the operations guide promises are there", async () => {
  const series = await exportedSeries();
  const rules = (parse(deploy("prometheus-alerts.yaml")) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);
  for (const rule of rules) {
    const names = queriedMetrics(rule.expr);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect({ alert: rule.alert, name, exported: series.has(name) }).toEqual({ alert: rule.alert, name, exported: true });
  }
  expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(["EventStoreConsumerLagging", "EventStoreFeedSilent", "EventStorePoolExhausted", "EventStoreEventLoopLag"]));
});

test("a misspelt metric is caught: the check can fail", async () => {
  const series = await exportedSeries();
  expect(queriedMetrics('rate(eventstore_rpc_call_total{code="OK"}[5m])').every((n) => series.has(n))).toBe(false);
  expect(queriedMetrics('rate(eventstore_rpc_calls_total{method="eventstore_not_a_metric"}[5m])')).toEqual(["eventstore_rpc_calls_total"]);
});

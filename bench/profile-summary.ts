import { readFileSync } from "node:fs";

/**
 * Where a V8 CPU profile (node --cpu-prof, e.g. from `npm run bench -- --server-cpu-prof DIR`)
 * spent its time: by area (a package, a folder of ours, node's internals, GC, idle), then the
 * functions with the most self time and the most total time (self plus callees).
 *   node dist/bench/profile-summary.js FILE.cpuprofile [TOP]
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function main(file: string, top: number): void {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let all = 0;
  profile.samples.forEach((id, k) => {
    const ms = (profile.timeDeltas[k] ?? 0) / 1000;
    all += ms;
    const node = byId.get(id)!;
    add(self, functionName(node), ms);
    add(areas, area(node.callFrame.url, node.callFrame.functionName), ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const name = functionName(byId.get(at)!);
      if (!seen.has(name)) add(total, name, ms);
      seen.add(name);
    }
  });
  const busy = all - (areas.get("(idle)") ?? 0);
  const pct = (ms: number) => `${((100 * ms) / busy).toFixed(1)}%`.padStart(6);
  const list = (title: string, m: Map<string, number>, n: number) =>
    `${title}\n` +
    [...m]
      .filter(([name]) => name !== "(idle)" && name !== "(root)")
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => `${pct(ms)}  ${ms.toFixed(0).padStart(7)} ms  ${name}`)
      .join("\n") +
    "\n";
  process.stdout.write(
    `${file}: ${(all / 1000).toFixed(1)} s profiled, ${(busy / 1000).toFixed(1)} s busy (${((100 * busy) / all).toFixed(0)}%); shares of busy time\n\n` +
      list("by area (self time)", areas, 20) +
      "\n" +
      list("by function, self time", self, top) +
      "\n" +
      list("by function, total time", total, top),
  );
}

function add(m: Map<string, number>, key: string, ms: number): void {
  m.set(key, (m.get(key) ?? 0) + ms);
}

function functionName(n: ProfileNode): string {
  const { functionName, url, lineNumber } = n.callFrame;
  if (!url) return functionName || "(anonymous)";
  return `${functionName || "(anonymous)"} ${shorten(url)}:${lineNumber + 1}`;
}

function area(url: string, functionName: string): string {
  if (!url) return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith("node:")) return url.replace(/^node:internal\/([^/]+).*$/, "node:$1");
  const ours = /\/dist\/((?:src|gen)\/[^/]+)/.exec(url);
  return ours ? ours[1] : shorten(url);
}

function shorten(url: string): string {
  return url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "").replace(/^.*\/dist\//, "");
}

main(process.argv[2], Number(process.argv[3] ?? 25));

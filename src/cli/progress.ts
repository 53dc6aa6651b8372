import type { Output } from "./output";

/**
 * Events done, their rate and the last position, on stderr: redrawn in place on a terminal at
 * most ten times a second, else a line every ten seconds, and a last line at the end.
 */
export function createProgress(output: Output, verb: string, head?: bigint) {
  const started = performance.now();
  let events = 0;
  let position: bigint | undefined;
  let shown = 0;
  const text = () => {
    const seconds = (performance.now() - started) / 1000;
    const share = head && position !== undefined && head > 0n ? ` (${Math.min(100, Number((position * 1000n) / head) / 10).toFixed(1)}%)` : "";
    const bar = head && position !== undefined && head > 0n ? ` [${"#".repeat(Math.min(20, Number((position * 20n) / head))).padEnd(20, ".")}]` : "";
    return `${verb} ${events} events${bar}${share}, ${Math.round(events / Math.max(seconds, 0.001))} events/s, last position ${position ?? "-"}`;
  };
  return {
    advance(n: number, last: bigint) {
      events += n;
      position = last;
      const now = performance.now();
      if (now - shown < (output.interactive ? 100 : 10_000)) return;
      shown = now;
      output.err(output.interactive ? `\r${text()}\x1b[K` : `${text()}\n`);
    },
    done() {
      output.err(output.interactive ? `\r${text()}\x1b[K\n` : `${text()}\n`);
    },
  };
}

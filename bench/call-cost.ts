import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import type { BenchCase, BenchContext, CaseResult } from "./cases";
import { createEventStoreClient } from "./event-store-client";
import { createEvents } from "./payload";
import { readCpuSeconds } from "./server-process";
import { round } from "./stats";
import { createStoreClient } from "./store-client";

const WARMUP_CALLS = 200;

/**
 * Where a lone call's time goes: one client making one call after another, of calls that do
 * more and more. A health check (the gRPC hop alone), GetStream (the hop and one small
 * query), a one-event Append through the server, the same append through our store in
 * this process, and a raw single-row insert. For each: the wall time per call, and the CPU time
 * per call of the server process and of this one.
 */
export function callCostCase(): BenchCase {
  return {
    name: "call-cost",
    async run(ctx: BenchContext): Promise<CaseResult> {
      const calls = Math.max(300, Math.round(ctx.settings.durationMs / 3));
      const run = randomBytes(4).toString("hex");
      const health = new grpc.Client(new URL(ctx.server.url).host, grpc.credentials.createInsecure(), {
        "grpc.use_local_subchannel_pool": 1,
      });
      const ours = createEventStoreClient(ctx.clientKind, ctx.server.url);
      const store = createStoreClient(ctx.store);
      const raw = await ctx.raw.client();
      const identity = (b: Buffer) => b;
      try {
        const line: CaseResult = { case: "call-cost", clients: 1, calls };
        await ours.append(`call-cost-${run}-read`, createEvents(1, 0), undefined);
        const kinds: [string, (i: number) => Promise<unknown>][] = [
          ["health", () => new Promise((resolve, reject) =>
            health.makeUnaryRequest("/grpc.health.v1.Health/Check", identity, identity, Buffer.alloc(0), (e) => (e ? reject(e) : resolve(undefined))))],
          ["get_stream", () => ours.streamRevision(`call-cost-${run}-read`)],
          ["append", (i) => ours.append(`call-cost-${run}-ours`, createEvents(1, i), i === 0 ? undefined : BigInt(i - 1))],
          ["store_append", (i) => store.append(`call-cost-${run}-store`, createEvents(1, i), i === 0 ? undefined : BigInt(i - 1))],
          ["raw_insert", (i) => raw.insert(`call-cost-${run}-raw`, BigInt(i), createEvents(1, i)[0])],
        ];
        for (const [kind, call] of kinds) {
          for (let i = 0; i < WARMUP_CALLS; i++) await call(i);
          const server = readCpuSeconds(ctx.server.pid);
          const client = process.cpuUsage();
          const started = performance.now();
          for (let i = WARMUP_CALLS; i < WARMUP_CALLS + calls; i++) await call(i);
          const wallMs = performance.now() - started;
          const clientUsed = process.cpuUsage(client);
          line[`${kind}_ms`] = round(wallMs / calls, 3);
          if (kind !== "store_append" && kind !== "raw_insert") {
            line[`${kind}_server_cpu_ms`] = round(((readCpuSeconds(ctx.server.pid) - server) * 1000) / calls, 3);
          }
          line[`${kind}_client_cpu_ms`] = round((clientUsed.user + clientUsed.system) / 1000 / calls, 3);
        }
        return line;
      } finally {
        health.close();
        ours.close();
        await raw.end();
      }
    },
  };
}

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../domain";

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves the registry as Prometheus text at GET /metrics, on a port of its own: apart from the
 * API, so that it needs no credentials and can stay on loopback or a private network. Anything
 * else is 404. A scrape costs one query (the consumers' lag), bounded by its limit.
 */
export async function serveMetrics(registry: Registry, options: { host: string; port: number; log: Logger }): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
      (e: unknown) => {
        options.log.warn("metrics could not be collected", { cause: e instanceof Error ? e.message : String(e) });
        res.writeHead(503, { "content-type": "text/plain" }).end("metrics unavailable: see the server's log\n");
      },
    );
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

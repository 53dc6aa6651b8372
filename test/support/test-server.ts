import { DEFAULT_LIMITS, silentLogger, type Limits, type Logger } from "../../src/domain";
import type { StoreLocation } from "../../src/store";
import { loadConfig, type Config } from "../../src/server/config";
import { startServer, type RunningServer } from "../../src/server/start-server";

export interface TestServer extends RunningServer {
  /** http://127.0.0.1:PORT */
  url: string;
}

/** The real server, in this process, on a free port. */
export async function startTestServer(
  location: StoreLocation,
  limits: Partial<Limits> = {},
  settings: Partial<Config> = {},
  log: Logger = silentLogger,
): Promise<TestServer> {
  const config: Config = {
    ...loadConfig([], {}),
    host: "127.0.0.1",
    port: 0,
    location,
    limits: { ...DEFAULT_LIMITS, ...limits },
    shutdownGraceMs: 2000,
    ...settings,
  };
  const server = await startServer(config, log);
  return Object.assign(server, { url: `http://127.0.0.1:${server.port}` });
}

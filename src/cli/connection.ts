import { readFileSync } from "node:fs";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import { ProjectionService } from "../../gen/eventstore/v1/projections_pb";

/** How the admin commands reach a server: its URL, the CA that signed its certificate, a token. */
export interface ConnectionFlags {
  server: string;
  ca?: string;
  token?: string;
}

export interface Connection {
  events: Client<typeof EventStoreService>;
  projections: Client<typeof ProjectionService>;
}

export const DEFAULT_SERVER = "http://127.0.0.1:50051";

/** gRPC over HTTP/2 (h2c for http://, TLS for https://), the token sent on every call. */
export function connectTo(flags: ConnectionFlags): Connection {
  const url = new URL(flags.server);
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new CliError(`--server must be an http:// or https:// URL, got ${flags.server}`);
  if (flags.ca && url.protocol !== "https:") throw new CliError("--ca is for an https:// server");
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${flags.token}`);
    return next(req);
  };
  const transport = createGrpcTransport({
    baseUrl: url.origin,
    interceptors: flags.token ? [bearer] : [],
    nodeOptions: flags.ca ? { ca: readFileSync(flags.ca) } : undefined,
  });
  return { events: createClient(EventStoreService, transport), projections: createClient(ProjectionService, transport) };
}

/** A mistake in the command line: printed with the command's usage, exit code 2. */
export class CliError extends Error {}

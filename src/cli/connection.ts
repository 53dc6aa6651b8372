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
  /** Send the token over plain http:// to a host other than this machine. */
  plaintextToken?: boolean;
}

export interface Connection {
  events: Client<typeof EventStoreService>;
  projections: Client<typeof ProjectionService>;
}

export const DEFAULT_SERVER = "http://127.0.0.1:50051";

/** gRPC over HTTP/2 (h2c for http://, TLS for https://), the token sent on every call. */
export function connectTo(flags: ConnectionFlags): Connection {
  let url: URL;
  try {
    url = new URL(flags.server);
  } catch {
    throw new CliError(`--server must be an http:// or https:// URL, got ${JSON.stringify(flags.server)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new CliError(`--server must be an http:// or https:// URL, got ${flags.server}`);
  const loopback = ["localhost", "[::1]"].includes(url.hostname) || /^127\./.test(url.hostname);
  if (flags.token && url.protocol === "http:" && !loopback && !flags.plaintextToken) {
    throw new CliError(`the token would cross the network in clear text to ${url.host}: use https:// (and --ca), or pass --plaintext-token`);
  }
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

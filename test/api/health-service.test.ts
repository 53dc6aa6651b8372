import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { EventStoreService } from "../../gen/eventstore/v1/eventstore_pb";
import {
  createHealthState,
  registerHealthService,
  ServingStatus,
  type HealthState,
} from "../../src/api/health-service";

const eventStore = EventStoreService.typeName;

let state: HealthState;
let openWatches = 0;
let shutdown: AbortController;
let server: http2.Http2Server;
const sessions = new Set<http2.ServerHttp2Session>();
let client: grpc.Client & Record<string, Function>;

// Counts the watches that are open, to see that a finished call lets go of its watch.
function counted(inner: HealthState): HealthState {
  return {
    get: (service) => inner.get(service),
    set: (service, status) => inner.set(service, status),
    async *watch(service, signal) {
      openWatches++;
      try {
        yield* inner.watch(service, signal);
      } finally {
        openWatches--;
      }
    },
  };
}

beforeEach(async () => {
  state = createHealthState();
  state.set("", ServingStatus.SERVING);
  state.set(eventStore, ServingStatus.SERVING);
  shutdown = new AbortController();
  const routes = (router: ConnectRouter) => registerHealthService(router, counted(state), shutdown.signal);
  server = http2.createServer(connectNodeAdapter({ routes }));
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));

  const definition = protoLoader.loadSync("grpc/health/v1/health.proto", {
    includeDirs: [path.join(__dirname, "../../proto")],
    enums: String,
  });
  const Health = (grpc.loadPackageDefinition(definition) as any).grpc.health.v1.Health;
  client = new Health(`127.0.0.1:${(server.address() as AddressInfo).port}`, grpc.credentials.createInsecure());
});

afterEach(async () => {
  client.close();
  sessions.forEach((session) => session.destroy());
  await new Promise((resolve) => server.close(resolve));
});

function check(service: string): Promise<{ status: string }> {
  return new Promise((resolve, reject) =>
    client.Check({ service }, (error: grpc.ServiceError | null, response: { status: string }) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

/** A Watch call whose messages are read one at a time. */
function watch(service: string) {
  const call: grpc.ClientReadableStream<{ status: string }> = client.Watch({ service });
  const messages = call[Symbol.asyncIterator]();
  return {
    call,
    next: async () => ((await messages.next()).value as { status: string }).status,
    end: async () => {
      const last = messages.next();
      return last.then(
        (result) => ({ done: result.done, code: grpc.status.OK }),
        (error: grpc.ServiceError) => ({ done: true, code: error.code }),
      );
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await sleep(10);
  expect(condition()).toBe(true);
}

describe("health Check", () => {
  test("answers SERVING for the whole server and for a serving service", async () => {
    await expect(check("")).resolves.toEqual({ status: "SERVING" });
    await expect(check(eventStore)).resolves.toEqual({ status: "SERVING" });
  });

  test("answers the status last set", async () => {
    state.set(eventStore, ServingStatus.NOT_SERVING);

    await expect(check(eventStore)).resolves.toEqual({ status: "NOT_SERVING" });
  });

  test("answers NOT_FOUND for an unknown service", async () => {
    await expect(check("no.such.Service")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });
});

describe("health Watch", () => {
  test("sends the status at once, then each change", async () => {
    const watcher = watch(eventStore);
    expect(await watcher.next()).toBe("SERVING");

    state.set(eventStore, ServingStatus.NOT_SERVING);
    expect(await watcher.next()).toBe("NOT_SERVING");

    state.set(eventStore, ServingStatus.SERVING);
    expect(await watcher.next()).toBe("SERVING");
    watcher.call.cancel();
  });

  test("sends nothing when another service changes or the status is set again unchanged", async () => {
    const watcher = watch(eventStore);
    expect(await watcher.next()).toBe("SERVING");

    state.set("", ServingStatus.NOT_SERVING);
    state.set(eventStore, ServingStatus.SERVING);
    await sleep(50);
    state.set(eventStore, ServingStatus.NOT_SERVING);
    expect(await watcher.next()).toBe("NOT_SERVING");
    watcher.call.cancel();
  });

  test("an unknown service is SERVICE_UNKNOWN until it is set", async () => {
    const watcher = watch("eventstore.v1.Later");
    expect(await watcher.next()).toBe("SERVICE_UNKNOWN");

    state.set("eventstore.v1.Later", ServingStatus.SERVING);
    expect(await watcher.next()).toBe("SERVING");
    watcher.call.cancel();
  });

  test("a cancelled watch stops watching", async () => {
    const watcher = watch(eventStore);
    expect(await watcher.next()).toBe("SERVING");
    expect(openWatches).toBe(1);

    watcher.call.cancel();

    await eventually(() => openWatches === 0);
  });

  test("ends with UNAVAILABLE when the server shuts down", async () => {
    const watcher = watch(eventStore);
    expect(await watcher.next()).toBe("SERVING");

    shutdown.abort();

    await expect(watcher.end()).resolves.toEqual({ done: true, code: grpc.status.UNAVAILABLE });
    expect(openWatches).toBe(0);
  });
});

import { randomUUID } from "node:crypto";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as protobuf from "protobufjs";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// Concurrent writers through the real server, each on its own gRPC channel: optimistic
// concurrency on one stream, idempotent retries racing each other, and multi-stream appends
// over overlapping streams. Every check reads back what the database holds.

const CLIENTS = 16;
const PROTO = path.join(__dirname, "../../proto");

interface WireEvent {
  id: string;
  stream: string;
  revision: string;
  position: string;
}

interface AppendResponse {
  stream: string;
  revision: string;
  positions: string[];
  eventIds: string[];
  committedAt: { seconds: string; nanos: number };
}

interface AppendRequest {
  stream: string;
  events: { id: string; type: string; data: Buffer }[];
  expectedState?: string;
  expectedRevision?: string;
}

type Client = grpc.Client & Record<string, Function>;

let db: TestDatabase;
let server: TestServer;
let clients: Client[];

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  const definition = protoLoader.loadSync("eventstore/v1/eventstore.proto", {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [PROTO],
  });
  const Service = (grpc.loadPackageDefinition(definition) as any).eventstore.v1.EventStoreService as grpc.ServiceClientConstructor;
  // A local subchannel pool each: otherwise grpc-js shares one connection among the clients.
  clients = Array.from(
    { length: CLIENTS },
    () => new Service(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as Client,
  );
});

afterAll(async () => {
  clients?.forEach((c) => c.close());
  await server?.stop();
  await db?.drop();
});

// google.rpc.Status as the grpc-status-details-bin trailer carries it, with the ErrorInfo of our contract.
const statusRoot = protobuf.loadSync(path.join(PROTO, "google/rpc/error_details.proto"));
protobuf.parse(`syntax = "proto3"; package google.protobuf; message Any { string type_url = 1; bytes value = 2; }`, statusRoot, { keepCase: true });
protobuf.parse(
  `syntax = "proto3"; package google.rpc; message Status { int32 code = 1; string message = 2; repeated google.protobuf.Any details = 3; }`,
  statusRoot,
  { keepCase: true },
);
const Status = statusRoot.lookupType("google.rpc.Status");
const ErrorInfo = statusRoot.lookupType("google.rpc.ErrorInfo");

interface ErrorInfoValue {
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

function errorInfo(error: grpc.ServiceError): ErrorInfoValue | undefined {
  const [bin] = error.metadata?.get("grpc-status-details-bin") ?? [];
  if (!bin) return undefined;
  const status = Status.toObject(Status.decode(bin as Buffer)) as { code: number; details?: { type_url: string; value: Uint8Array }[] };
  expect(status.code).toBe(error.code);
  const any = status.details?.find((d) => d.type_url === "type.googleapis.com/google.rpc.ErrorInfo");
  return any && (ErrorInfo.toObject(ErrorInfo.decode(any.value), { defaults: true }) as ErrorInfoValue);
}

/** The failure's ErrorInfo if it is `code` with `reason`; rethrows anything else, failing the test. */
function expectFailure(error: unknown, code: grpc.status, reason: string): ErrorInfoValue {
  const e = error as grpc.ServiceError;
  const info = typeof e?.code === "number" ? errorInfo(e) : undefined;
  if (e?.code !== code || info?.reason !== reason) {
    throw new Error(`expected ${grpc.status[code]} ${reason}, got ${grpc.status[e?.code] ?? ""} ${info?.reason ?? ""}: ${e?.message ?? e}`);
  }
  expect(info.domain).toBe("eventstore.v1");
  return info;
}

function unary<T>(client: Client, method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) =>
    client[method](request, { deadline: Date.now() + 30_000 }, (error: grpc.ServiceError | null, response: T) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

async function collect(call: grpc.ClientReadableStream<{ events: WireEvent[] }>): Promise<WireEvent[]> {
  const events: WireEvent[] = [];
  for await (const message of call) events.push(...message.events);
  return events;
}

const readStream = (stream: string) => collect(clients[0].ReadStream({ stream }));
const readWholeLog = () => collect(clients[0].ReadAll({}));

async function lastPosition(): Promise<string | undefined> {
  const [last] = await collect(clients[0].ReadAll({ direction: "DIRECTION_BACKWARDS", limit: "1" }));
  return last?.position;
}

/** The stream's revision, or undefined when it has no events. */
async function currentRevision(client: Client, stream: string): Promise<string | undefined> {
  try {
    const { stream: info } = await unary<{ stream: { revision: string; _revision?: string } }>(client, "GetStream", { stream });
    return info._revision === "revision" ? info.revision : undefined;
  } catch (e) {
    expectFailure(e, grpc.status.NOT_FOUND, "STREAM_NOT_FOUND");
    return undefined;
  }
}

function expectedAt(revision: string | undefined): Pick<AppendRequest, "expectedState" | "expectedRevision"> {
  return revision === undefined ? { expectedState: "EXPECTED_STATE_NO_STREAM" } : { expectedRevision: revision };
}

const event = (id = randomUUID()) => ({ id, type: "Tested", data: Buffer.from(JSON.stringify({ id })) });

const shuffled = <T>(items: T[]) =>
  items
    .map((item) => ({ item, key: Math.random() }))
    .sort((a, b) => a.key - b.key)
    .map(({ item }) => item);

test("16 clients racing on one stream with exact expected revisions write every revision exactly once", async () => {
  const stream = "account-contended";
  const target = 100;
  const won: { id: string; expected: string | undefined; revision: string }[] = [];
  let conflicts = 0;

  await Promise.all(
    clients.map(async (client) => {
      while (won.length < target) {
        const expected = await currentRevision(client, stream);
        const id = randomUUID();
        try {
          const response = await unary<AppendResponse>(client, "Append", { stream, events: [event(id)], ...expectedAt(expected) });
          won.push({ id, expected, revision: response.revision });
        } catch (e) {
          const info = expectFailure(e, grpc.status.ABORTED, "WRONG_EXPECTED_REVISION");
          expect(info.metadata).toMatchObject({ stream, expected_revision: expected ?? "no_stream" });
          expect(info.metadata.actual_revision).not.toBe(info.metadata.expected_revision);
          conflicts++;
        }
      }
    }),
  );

  expect(conflicts).toBeGreaterThan(0);
  for (const w of won) expect(BigInt(w.revision)).toBe(w.expected === undefined ? 0n : BigInt(w.expected) + 1n);
  const byRevision = [...won].sort((a, b) => Number(BigInt(a.revision) - BigInt(b.revision)));
  expect(byRevision.map((w) => w.revision)).toEqual(won.map((_, i) => String(i)));

  const stored = await readStream(stream);
  expect(stored.map((e) => e.revision)).toEqual(won.map((_, i) => String(i)));
  expect(stored.map((e) => e.id)).toEqual(byRevision.map((w) => w.id));
  for (let i = 1; i < stored.length; i++) expect(BigInt(stored[i].position)).toBeGreaterThan(BigInt(stored[i - 1].position));
});

describe("idempotent retries under concurrency", () => {
  async function sendAtOnce<T>(request: AppendRequest, copiesPerClient = 2): Promise<PromiseSettledResult<T>[]> {
    return Promise.allSettled(
      clients.flatMap((client) => Array.from({ length: copiesPerClient }, () => unary<T>(client, "Append", request))),
    );
  }

  function expectOneAnswer(settled: PromiseSettledResult<AppendResponse>[]): AppendResponse {
    const rejected = settled.filter((s) => s.status === "rejected");
    expect(rejected.map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    const answers = settled.map((s) => (s as PromiseFulfilledResult<AppendResponse>).value);
    for (const a of answers) expect(a).toEqual(answers[0]);
    return answers[0];
  }

  async function expectStoredOnce(stream: string, ids: string[], answer: AppendResponse, firstRevision: number) {
    const stored = (await readStream(stream)).slice(firstRevision);
    expect(stored.map((e) => e.id)).toEqual(ids);
    expect(stored.map((e) => e.revision)).toEqual(ids.map((_, k) => String(firstRevision + k)));
    expect(stored.map((e) => e.position)).toEqual(answer.positions);
    const everywhere = (await readWholeLog()).filter((e) => ids.includes(e.id));
    expect(everywhere).toHaveLength(ids.length);
  }

  test("the same NO_STREAM append sent by many clients at once answers one result to all and writes once", async () => {
    const stream = "cart-idempotent";
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const request = { stream, events: ids.map((id) => event(id)), expectedState: "EXPECTED_STATE_NO_STREAM" };

    const answer = expectOneAnswer(await sendAtOnce<AppendResponse>(request));

    expect(answer).toMatchObject({ stream, revision: "2", eventIds: ids });
    expect(answer.positions).toHaveLength(3);
    await expectStoredOnce(stream, ids, answer, 0);
  });

  test("the same exact-revision append sent by many clients at once answers one result to all and writes once", async () => {
    const stream = "cart-idempotent-exact";
    await unary(clients[0], "Append", { stream, events: [event(), event()], expectedState: "EXPECTED_STATE_NO_STREAM" });
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const request = { stream, events: ids.map((id) => event(id)), expectedRevision: "1" };

    const answer = expectOneAnswer(await sendAtOnce<AppendResponse>(request));

    expect(answer).toMatchObject({ stream, revision: "4", eventIds: ids });
    await expectStoredOnce(stream, ids, answer, 2);
  });

  test("the same ids sent to another stream by many clients at once answer ALREADY_EXISTS and write nothing", async () => {
    const stream = "cart-original";
    const ids = [randomUUID(), randomUUID()];
    await unary(clients[0], "Append", { stream, events: ids.map((id) => event(id)), expectedState: "EXPECTED_STATE_NO_STREAM" });
    const before = await lastPosition();

    const settled = await sendAtOnce<AppendResponse>({
      stream: "cart-elsewhere",
      events: ids.map((id) => event(id)),
      expectedState: "EXPECTED_STATE_ANY",
    });

    for (const s of settled) {
      expect(s.status).toBe("rejected");
      const info = expectFailure((s as PromiseRejectedResult).reason, grpc.status.ALREADY_EXISTS, "DUPLICATE_EVENT_ID");
      expect(ids).toContain(info.metadata.event_id);
    }
    expect(await currentRevision(clients[0], "cart-elsewhere")).toBeUndefined();
    expect(await lastPosition()).toBe(before);
    expect((await readStream(stream)).map((e) => e.id)).toEqual(ids);
  });
});

test("concurrent multi-stream appends over overlapping streams in different orders all finish, each all or nothing", async () => {
  const streams = ["ledger-a", "ledger-b", "ledger-c", "ledger-d", "ledger-e"];
  const callsPerClient = 10;
  interface Call {
    appends: { stream: string; ids: string[] }[];
    results?: AppendResponse[];
  }
  const calls: Call[] = [];

  await Promise.all(
    clients.map(async (client) => {
      for (let n = 0; n < callsPerClient; n++) {
        const chosen = shuffled(streams).slice(0, 2 + Math.floor(Math.random() * 3));
        const appends = await Promise.all(
          chosen.map(async (stream) => {
            const ids = Array.from({ length: 1 + Math.floor(Math.random() * 2) }, () => randomUUID());
            // Half expect what they just read, which a racing call often changes first.
            const expected = Math.random() < 0.5 ? expectedAt(await currentRevision(client, stream)) : {};
            return { stream, events: ids.map((id) => event(id)), ...expected, ids };
          }),
        );
        const call: Call = { appends: appends.map(({ stream, ids }) => ({ stream, ids })) };
        calls.push(call);
        try {
          const response = await unary<{ results: AppendResponse[] }>(client, "MultiStreamAppend", {
            appends: appends.map(({ ids: _, ...request }) => request),
          });
          call.results = response.results;
        } catch (e) {
          expectFailure(e, grpc.status.ABORTED, "WRONG_EXPECTED_REVISION");
        }
      }
    }),
  );

  const succeeded = calls.filter((c) => c.results);
  expect(calls).toHaveLength(CLIENTS * callsPerClient);
  expect(succeeded.length).toBeGreaterThan(0);
  expect(succeeded.length).toBeLessThan(calls.length);

  const log = new Map((await readWholeLog()).map((e) => [e.id, e]));
  for (const call of calls) {
    call.appends.forEach((append, i) => {
      const stored = append.ids.map((id) => log.get(id));
      if (!call.results) {
        expect(stored).toEqual(append.ids.map(() => undefined));
        return;
      }
      const result = call.results[i];
      expect(result.stream).toBe(append.stream);
      expect(result.eventIds).toEqual(append.ids);
      expect(stored.map((e) => e?.stream)).toEqual(append.ids.map(() => append.stream));
      expect(stored.map((e) => e?.position)).toEqual(result.positions);
      expect(stored[stored.length - 1]?.revision).toBe(result.revision);
    });
  }
  for (const stream of streams) {
    const stored = await readStream(stream);
    const written = succeeded.flatMap((c) => c.appends.filter((a) => a.stream === stream).flatMap((a) => a.ids));
    expect(stored.map((e) => e.revision)).toEqual(stored.map((_, i) => String(i)));
    expect(new Set(stored.map((e) => e.id))).toEqual(new Set(written));
    expect(stored).toHaveLength(written.length);
  }
});

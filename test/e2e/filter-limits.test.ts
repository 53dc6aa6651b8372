import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { MessageInitShape } from "@bufbuild/protobuf";
import {
  EventStoreService,
  FilterSchema,
  Operator,
  StartPoint,
  SubscribeRequestSchema,
  type ReadAllRequest,
  type SubscribeRequest,
  type SubscribeResponse,
} from "../../gen/eventstore/v1/eventstore_pb";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb";
import { DEFAULT_LIMITS } from "../../src/domain";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

// Filters cost what their limits allow and no more: regular expressions in linear time,
// refused before any work when RE2 cannot parse them or they are too large, and whole filters
// refused by their total bytes. The server runs with the default limits.

let db: TestDatabase;
let server: TestServer;
let client: Client<typeof EventStoreService>;

beforeAll(async () => {
  db = await createTestDatabase();
  server = await startTestServer({ kind: "postgres", url: db.url });
  client = createClient(EventStoreService, createGrpcTransport({ baseUrl: server.url }));
});
afterAll(async () => {
  await server?.stop();
  await db?.drop();
});

type Filter = MessageInitShape<typeof FilterSchema>;

const text = (value: string) => ({ kind: { case: "stringValue" as const, value } });
const regex = (pattern: string, key = "k") => ({ field: { case: "metadataKey" as const, value: key }, operator: Operator.REGEX, value: text(pattern) });
const inList = (values: string[], key = "k") => ({ field: { case: "metadataKey" as const, value: key }, operator: Operator.IN, values: values.map(text) });

const appendWithK = (stream: string, ...ks: string[]) =>
  client.append({
    stream,
    events: ks.map((k) => ({ id: randomUUID(), type: "Tagged", payload: { case: "data" as const, value: new Uint8Array([1]) }, metadata: { k } })),
  });

async function readAll(filter: Filter): Promise<string[]> {
  const ks: string[] = [];
  for await (const m of client.readAll({ filter } as ReadAllRequest)) {
    for (const e of m.events) ks.push(String(e.metadata?.k));
  }
  return ks;
}

/** The subscription's messages until `until` holds (15 s at most); then it is cancelled. */
async function subscribe(
  request: MessageInitShape<typeof SubscribeRequestSchema>,
  until: (seen: SubscribeResponse[]) => boolean,
  during?: (seen: SubscribeResponse[]) => Promise<void>,
): Promise<SubscribeResponse[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 15_000);
  const seen: SubscribeResponse[] = [];
  try {
    for await (const m of client.subscribe(request as SubscribeRequest, { signal: abort.signal })) {
      seen.push(m);
      await during?.(seen);
      if (until(seen)) break;
    }
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

async function refusal(call: () => Promise<unknown>) {
  try {
    await call();
  } catch (e) {
    const err = ConnectError.from(e);
    const [info] = err.findDetails(ErrorInfoSchema);
    return { code: err.code, reason: info?.reason, field: info?.metadata.field, limit: info?.metadata.limit, message: err.rawMessage };
  }
  throw new Error("expected the call to be refused");
}

/** A subscription refused before its confirmation: the first message would end `subscribe` without an error. */
const subscribeRefusal = (filter: Filter) => refusal(() => subscribe({ filter }, () => true));

describe("regular expressions run in linear time on a real server", () => {
  const evil = ["a".repeat(30) + "b", "a".repeat(100_000) + "b"];

  it("ReadAll with (a+)+$ over values that take RegExp 23 s and forever answers at once", async () => {
    const stream = `redos-${randomUUID()}`;
    await appendWithK(stream, ...evil, "aaaa");
    const started = performance.now();
    const ks = await readAll({ streams: { case: "streamPrefix", value: stream }, matchers: [regex("(a+)+$")] });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(ks).toEqual(["aaaa"]);
  });

  it("a live subscription with (a+)+$ gets only the matching event, and other calls go on", async () => {
    const stream = `redos-live-${randomUUID()}`;
    let appendedAt = 0;
    let otherCallMs = Infinity;
    const seen = await subscribe(
      { start: { case: "startPoint", value: StartPoint.END }, filter: { streams: { case: "streamPrefix", value: stream }, matchers: [regex("(a+)+$")] } },
      (ms) => ms.some((m) => m.message.case === "events"),
      async (ms) => {
        if (ms.length !== 1) return;
        expect(ms[0].message.case).toBe("confirmation");
        appendedAt = performance.now();
        await appendWithK(stream, ...evil, "aaaa");
        const t = performance.now();
        await client.getStream({ stream });
        otherCallMs = performance.now() - t;
      },
    );
    const batch = seen.find((m) => m.message.case === "events");
    expect(batch?.message.case === "events" && batch.message.value.events.map((e) => e.metadata?.k)).toEqual(["aaaa"]);
    expect(performance.now() - appendedAt).toBeLessThan(5000);
    expect(otherCallMs).toBeLessThan(1000);
  });
});

describe("regular expressions RE2 cannot run are refused with the field named", () => {
  it("a backreference, in ReadAll", async () => {
    const got = await refusal(() => readAll({ matchers: [regex("(a)\\1")] }));
    expect(got).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "filter.matchers[0].value" });
    expect(got.message).toContain("invalid escape sequence: `\\1`");
  });

  it("a backreference and a lookahead, in Subscribe, before its confirmation", async () => {
    for (const pattern of ["(a)\\1", "a(?=b)"]) {
      const got = await subscribeRefusal({ matchers: [inList(["x"]), regex(pattern)] });
      expect(got).toMatchObject({ code: Code.InvalidArgument, reason: "INVALID_ARGUMENT", field: "filter.matchers[1].value" });
      expect(got.message).toMatch(/RE2 syntax/);
    }
  });

  it("a pattern over the length or size limit, or patterns over it together, are LIMIT_EXCEEDED", async () => {
    const long = await refusal(() => readAll({ matchers: [regex("a".repeat(DEFAULT_LIMITS.maxRegexLength + 1))] }));
    expect(long).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter.matchers[0].value", limit: String(DEFAULT_LIMITS.maxRegexLength) });
    const large = await subscribeRefusal({ matchers: [regex("[ab]*a[ab]{1000}c")] });
    expect(large).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter.matchers[0].value", limit: String(DEFAULT_LIMITS.maxRegexInstructions) });
    // Each is allowed alone; matching an event would cost both.
    const together = await subscribeRefusal({ matchers: [regex("[ab]*a[ab]{150}c"), regex("[ab]*a[ab]{150}c", "j")] });
    expect(together).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter.matchers[1].value" });
  });
});

describe("filters are limited by their total bytes", () => {
  // 99 values of 700 bytes: 69,498 bytes JSON-encoded, over the 65,536 of the default.
  const over = Array.from({ length: 99 }, (_, i) => `${i}`.padEnd(700, "v"));
  const under = Array.from({ length: 99 }, (_, i) => `${i}`.padEnd(600, "v"));

  it("ReadAll with an in list over maxFilterBytes is refused at once, naming the filter", async () => {
    const started = performance.now();
    const got = await refusal(() => readAll({ matchers: [inList(over)] }));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(got).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter", limit: String(DEFAULT_LIMITS.maxFilterBytes) });
  });

  it("ReadAll with an in list just under it is served", async () => {
    const stream = `bytes-${randomUUID()}`;
    await appendWithK(stream, under[3], "other");
    expect(await readAll({ streams: { case: "streamPrefix", value: stream }, matchers: [inList(under)] })).toEqual([under[3]]);
  });

  it("Subscribe is refused before its confirmation: an in list, event types, a metadata key", async () => {
    for (const filter of [
      { matchers: [inList(over)] },
      { eventTypes: over },
      { matchers: [{ field: { case: "metadataKey" as const, value: "é".repeat(33_000) }, operator: Operator.EQ, value: text("x") }] },
    ] as Filter[]) {
      const got = await subscribeRefusal(filter);
      expect(got).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter", limit: String(DEFAULT_LIMITS.maxFilterBytes) });
    }
  });

  it("counts UTF-8 bytes: a key of 33,000 é is 66,000 bytes, over; 32,000 fit", async () => {
    const byKey = (n: number): Filter => ({ matchers: [{ field: { case: "metadataKey", value: "é".repeat(n) }, operator: Operator.EQ, value: text("x") }] });
    expect(await refusal(() => readAll(byKey(33_000)))).toMatchObject({ code: Code.ResourceExhausted, field: "filter" });
    expect(await readAll(byKey(32_000))).toEqual([]);
  });

  it("too many terms is the same kind of refusal", async () => {
    const got = await refusal(() => readAll({ eventTypes: Array.from({ length: DEFAULT_LIMITS.maxFilterTerms + 1 }, (_, i) => `T${i}`) }));
    expect(got).toMatchObject({ code: Code.ResourceExhausted, reason: "LIMIT_EXCEEDED", field: "filter", limit: String(DEFAULT_LIMITS.maxFilterTerms) });
  });
});

import { randomUUID } from "node:crypto";
import {
  InvalidArgumentError,
  jsonData,
  linkTo,
  LINK_EVENT_TYPE,
  type EventStoreClient,
  type RecordedEvent,
} from "../../src/client";
import { createGrpcJsClient, serverStream } from "../support/grpc-js-client";
import { startClientServer } from "../support/client-server";
import type { TestServer } from "../support/test-server";
import { until } from "../support/until";

let server: TestServer;
let client: EventStoreClient;
let close: () => Promise<void>;

beforeAll(async () => void ({ server, client, close } = await startClientServer()));

afterAll(() => close?.());

async function collect(events: AsyncIterable<RecordedEvent>, count = Infinity): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const e of events) {
    all.push(e);
    if (all.length >= count) break;
  }
  return all;
}

/** Two accounts with one event each, and a stream of links to them (the second link first). */
async function linkedStreams() {
  const id = randomUUID().replaceAll("-", "");
  const [a, b, links] = [`account-${id}a`, `account-${id}b`, `vip-${id}`];
  const opened = await client.append(a, [{ type: "Opened", data: { owner: "ann" } }]);
  await client.append(b, [{ type: "Opened", data: { owner: "bob" } }, { type: "Deposited", data: { amount: 5 } }]);
  await client.append(links, [linkTo({ stream: b, revision: 1n }), linkTo({ stream: a, revision: opened.revision }, { why: "vip" })]);
  return { a, b, links };
}

describe("link events", () => {
  it("read back as themselves, or resolved as the events they point to, each carrying its link", async () => {
    const { a, b, links } = await linkedStreams();
    const raw = await collect(client.readStream(links));
    expect(raw.map((e) => [e.type, new TextDecoder().decode(e.data), e.link])).toEqual([
      [LINK_EVENT_TYPE, `1@${b}`, undefined],
      [LINK_EVENT_TYPE, `0@${a}`, undefined],
    ]);
    const resolved = await collect(client.readStream(links, { resolveLinks: true }));
    expect(resolved.map((e) => [e.stream, e.revision, e.type, jsonData(e)])).toEqual([
      [b, 1n, "Deposited", { amount: 5 }],
      [a, 0n, "Opened", { owner: "ann" }],
    ]);
    expect(resolved.map((e) => [e.link?.stream, e.link?.revision, e.link?.metadata])).toEqual([
      [links, 0n, {}],
      [links, 1n, { why: "vip" }],
    ]);
    const all = await collect(client.readAll({ filter: { category: "vip" }, resolveLinks: true }));
    expect(all.filter((e) => e.link?.stream === links).map((e) => e.stream)).toEqual([b, a]);
  });

  it("resolve in subscriptions, in the history and live, for every subscriber of a live batch", async () => {
    const { a, links } = await linkedStreams();
    // Two subscribers: the live link is resolved once and shared; each must still get it resolved.
    const take3 = async () => {
      const received: RecordedEvent[] = [];
      for await (const e of client.subscribe({ stream: links, resolveLinks: true })) {
        received.push(e);
        if (received.length === 3) break;
      }
      return received;
    };
    const done = Promise.all([take3(), take3()]);
    await until(() => server.liveSubscribers() >= 2, "both subscribers live");
    const deposit = await client.append(a, [{ type: "Deposited", data: { amount: 7 } }]);
    await client.append(links, [linkTo({ stream: a, revision: deposit.revision })]);
    for (const received of await done) {
      expect(received.map((e) => [e.stream, e.type, e.link?.stream])).toEqual([
        [expect.stringContaining("account-"), "Deposited", links],
        [a, "Opened", links],
        [a, "Deposited", links],
      ]);
      expect(jsonData(received[2])).toEqual({ amount: 7 });
    }
  });

  it("whose event is gone come as themselves", async () => {
    const { b, links } = await linkedStreams();
    await client.deleteStream(b);
    const resolved = await collect(client.readStream(links, { resolveLinks: true }));
    expect(resolved.map((e) => [e.type, e.stream, e.link])).toEqual([
      [LINK_EVENT_TYPE, links, undefined],
      ["Opened", expect.stringContaining("account-"), expect.objectContaining({ stream: links, revision: 1n })],
    ]);
  });

  it("resolve for a plain @grpc/grpc-js client too", async () => {
    const { b, links } = await linkedStreams();
    const grpcJs = createGrpcJsClient(`127.0.0.1:${server.port}`);
    try {
      const [first] = await serverStream(grpcJs, "ReadStream", { stream: links, resolveLinks: true, dataEncoding: "DATA_ENCODING_JSON" });
      expect(first.events[0]).toMatchObject({ stream: b, revision: "1", type: "Deposited", link: { stream: links, revision: "0", type: "$>" } });
      expect(first.events[0].json).toMatchObject({ structValue: { fields: { amount: { numberValue: 5 } } } });
      expect(Buffer.from(first.events[0].link.data).toString()).toBe(`1@${b}`);
    } finally {
      grpcJs.close();
    }
  });

  it("must point somewhere: malformed link data is INVALID_ARGUMENT and nothing is written", async () => {
    const stream = `vip-${randomUUID()}`;
    for (const data of ["", "x@account-1", "-1@account-1", "1@", "1", "01@account-1", "1@bad\u0001name"]) {
      await expect(
        client.append(stream, [{ type: LINK_EVENT_TYPE, data: new TextEncoder().encode(data), contentType: "text/plain" }]),
      ).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    await expect(client.getStream(stream)).rejects.toThrow(/not found/);
  });
});

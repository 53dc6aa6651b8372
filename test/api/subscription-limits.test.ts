import * as grpc from "@grpc/grpc-js";
import { isEventStoreError } from "../../src/domain";
import { createSubscriptionLimits } from "../../src/api/subscription-limits";
import { createGrpcJsClient, errorInfo } from "../support/grpc-js-client";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { startTestServer, type TestServer } from "../support/test-server";

function refusal(open: () => unknown) {
  try {
    open();
  } catch (e) {
    if (isEventStoreError(e)) return { kind: e.kind, facts: e.facts };
    throw e;
  }
  throw new Error("not refused");
}

describe("the subscription counter", () => {
  test("counts each principal apart, and refuses one more than a principal's share", () => {
    const limits = createSubscriptionLimits({ maxPerServer: 10, maxPerPrincipal: 2 });
    limits.open("orders");
    limits.open("orders");
    limits.open("billing");

    expect(refusal(() => limits.open("orders"))).toEqual({
      kind: "LIMIT_EXCEEDED",
      facts: { field: "subscriptions", limit: "2", value: "3", setting: "max-subscriptions-per-principal" },
    });
    expect(limits.count("orders")).toBe(2);
    expect(limits.count("billing")).toBe(1);
    expect(limits.count()).toBe(3);
  });

  test("refuses one more than the server holds, whoever asks", () => {
    const limits = createSubscriptionLimits({ maxPerServer: 2, maxPerPrincipal: 10 });
    limits.open("orders");
    limits.open("billing");

    expect(refusal(() => limits.open("shipping"))).toMatchObject({ kind: "LIMIT_EXCEEDED", facts: { limit: "2", setting: "max-subscriptions" } });
  });

  test("a subscription closed gives its place back, once however often it is closed", () => {
    const limits = createSubscriptionLimits({ maxPerServer: 2, maxPerPrincipal: 2 });
    const close = limits.open("orders");
    limits.open("orders");

    close();
    close();

    expect(limits.count("orders")).toBe(1);
    limits.open("orders");
    expect(() => limits.open("orders")).toThrow(/most one principal may hold/);
  });
});

describe("Subscribe over gRPC (grpc-js)", () => {
  let db: TestDatabase;
  let perPrincipal: TestServer;
  let perServer: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    perPrincipal = await startTestServer({ kind: "postgres", url: db.url }, {}, { maxSubscriptions: 10, maxSubscriptionsPerPrincipal: 2 });
    perServer = await startTestServer({ kind: "postgres", url: db.url }, {}, { maxSubscriptions: 2, maxSubscriptionsPerPrincipal: 10 });
  });

  afterAll(async () => {
    await perPrincipal?.stop();
    await perServer?.stop();
    await db?.drop();
  });

  /** Opens a subscription; answers once it is confirmed, or with the error it ended with first. */
  function subscribe(client: grpc.Client & Record<string, Function>) {
    const call: grpc.ClientReadableStream<any> = client.Subscribe({ startPoint: "START_POINT_END" });
    const outcome = new Promise<{ confirmed: true } | { error: grpc.ServiceError }>((resolve) => {
      call.on("data", (m) => m.confirmation && resolve({ confirmed: true }));
      call.on("error", (error: grpc.ServiceError) => resolve({ error }));
    });
    return { call, outcome };
  }

  async function confirmed(client: grpc.Client & Record<string, Function>) {
    const sub = subscribe(client);
    expect(await sub.outcome).toEqual({ confirmed: true });
    return sub.call;
  }

  test.each([
    ["max-subscriptions-per-principal", () => perPrincipal],
    ["max-subscriptions", () => perServer],
  ])("one subscription past %s is refused with RESOURCE_EXHAUSTED before any confirmation; closing one lets another in", async (setting, server) => {
    const client = createGrpcJsClient(`127.0.0.1:${server().port}`);
    try {
      const open = [await confirmed(client), await confirmed(client)];

      const refused = await subscribe(client).outcome;
      expect("error" in refused && refused.error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(errorInfo((refused as { error: grpc.ServiceError }).error)).toMatchObject({
        reason: "LIMIT_EXCEEDED",
        metadata: { field: "subscriptions", limit: "2", setting },
      });

      open[0].cancel();
      // The server lets go of the place when it sees the cancel: ask until it has.
      let next: grpc.ClientReadableStream<any> | undefined;
      for (let attempt = 0; attempt < 40 && !next; attempt++) {
        const sub = subscribe(client);
        if ("confirmed" in (await sub.outcome)) next = sub.call;
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(next).toBeDefined();
      next!.cancel();
      open[1].cancel();
    } finally {
      client.close();
    }
  });
});

import { randomUUID } from "node:crypto";
import fc from "fast-check";
import {
  createEventTypeRegistry,
  createQuery,
  jsonEventType,
  ProjectionDefinitionError,
  type EventStoreClient,
} from "../../src/client";
import { ProjectionDefinition } from "../../src/client/projection-definition";
import { startClientServer } from "../support/client-server";

let client: EventStoreClient;
let close: () => Promise<void>;

beforeAll(async () => void ({ client, close } = await startClientServer()));

afterAll(() => close?.());

const unique = () => randomUUID().replaceAll("-", "").slice(0, 12);

describe("a query", () => {
  it("folds every account's events from the whole log (a category), with typed handlers; other types pass by", async () => {
    const category = `acct${unique()}`;
    await client.append(`${category}-1`, [{ type: "Opened", data: { owner: "ann" } }, { type: "Deposited", data: { amount: 10 } }]);
    await client.append(`${category}-2`, [{ type: "Opened", data: { owner: "bob" } }, { type: "Deposited", data: { amount: 5 } }]);
    await client.append(`${category}-1`, [{ type: "Withdrawn", data: { amount: 3 } }, { type: "Noted", data: { text: "hi" } }]);
    await client.append(`other${unique()}-1`, [{ type: "Deposited", data: { amount: 1000 } }]);
    const totals = await createQuery(client)
      .fromAll({ category })
      .init(() => ({ accounts: 0, balance: 0 }))
      .when<{ Opened: { owner: string }; Deposited: { amount: number }; Withdrawn: { amount: number } }>({
        Opened: (s) => ({ ...s, accounts: s.accounts + 1 }),
        Deposited: (s, e) => ({ ...s, balance: s.balance + e.payload.amount }),
        Withdrawn: (s, e) => ({ ...s, balance: s.balance - e.payload.amount }),
      })
      .run();
    expect(totals).toEqual({ accounts: 2, balance: 12 });
  });

  it("reads one stream, or several merged in log order, and whenAny sees every event", async () => {
    const [a, b, c] = [`q-${unique()}`, `q-${unique()}`, `q-${unique()}`];
    await client.append(a, [{ type: "A1" }]);
    await client.append(b, [{ type: "B1" }]);
    await client.append(c, [{ type: "C1" }]);
    await client.append(a, [{ type: "A2" }]);
    const types = (q: ReturnType<typeof createQuery>) =>
      q
        .init(() => [] as string[])
        .whenAny((s, e) => [...s, e.type])
        .run();
    expect(await types(createQuery(client).fromStream(a))).toEqual(["A1", "A2"]);
    expect(await types(createQuery(client).fromStreams(a, c))).toEqual(["A1", "C1", "A2"]);
    expect(await types(createQuery(client).fromStream(`q-${unique()}`))).toEqual([]); // no such stream: the initial state
  });

  it("decodes payloads through the registry and middleware before handlers see them", async () => {
    const stream = `q-${unique()}`;
    await client.append(stream, [{ type: "Deposited", data: { amt: 4 }, metadata: { schema: 1 } }]);
    await client.append(stream, [{ type: "Deposited", data: { amount: 6 } }]);
    const registry = createEventTypeRegistry(jsonEventType<{ amount: number }>("Deposited"));
    const sum = await createQuery(client, {
      registry,
      // An upcaster: version 1 called the field `amt`.
      middleware: [{ afterLoad: (e) => (e.metadata.schema === 1 ? { ...e, payload: { amount: (e.payload as { amt: number }).amt } } : e) }],
    })
      .fromStream(stream)
      .init(() => 0)
      .when<{ Deposited: { amount: number } }>({ Deposited: (s, e) => s + e.payload.amount })
      .run();
    expect(sum).toBe(10);
  });

  it("gives the same state as folding the appended events in order, for any events over any streams", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ stream: fc.integer({ min: 0, max: 3 }), amount: fc.integer({ min: -100, max: 100 }) }), { minLength: 1, maxLength: 25 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 4 }),
        async (events, chosen) => {
          const run = unique();
          const name = (i: number) => `prop${run}-${i}`;
          for (const e of events) await client.append(name(e.stream), [{ type: "Added", data: { amount: e.amount } }]);
          const expected = events.filter((e) => chosen.includes(e.stream)).map((e) => `${e.stream}:${e.amount}`);
          const folded = await createQuery(client)
            .fromStreams(...chosen.map(name))
            .init(() => [] as string[])
            .when<{ Added: { amount: number } }>({ Added: (s, e) => [...s, `${e.stream.split("-")[1]}:${e.payload.amount}`] })
            .run();
          expect(folded).toEqual(expected);
        },
      ),
      { numRuns: 15 },
    );
  });
});

describe("building a query or projection wrongly", () => {
  it("is a clear error for each misuse", async () => {
    const q = () => createQuery(client);
    expect(() => q().fromStream("a").fromAll()).toThrow(new ProjectionDefinitionError("a source was already chosen: call one of fromStream, fromStreams and fromAll, once"));
    expect(() => q().fromAll().fromStreams("a")).toThrow(ProjectionDefinitionError);
    expect(() => q().fromStreams()).toThrow("fromStreams needs at least one stream");
    expect(() => q().fromAll().when({ A: (s) => s })).toThrow("when before init: call init first, so that handlers have a state");
    expect(() => q().fromAll().whenAny((s) => s)).toThrow("whenAny before init");
    expect(() => q().init(() => 0).init(() => 1)).toThrow("init was already called");
    expect(() => q().init(() => 0).when({})).toThrow("when needs at least one handler");
    expect(() => q().init(() => 0).when({ A: (s) => s }).whenAny((s) => s)).toThrow("when or whenAny was already called");
    await expect(q().fromAll().init(() => 0).run()).rejects.toThrow("no handler: call when or whenAny before running");
    await expect(q().init(() => 0).whenAny((s) => s).run()).rejects.toThrow("no source: call fromStream, fromStreams or fromAll before running");
    await expect(q().fromAll().run()).rejects.toThrow("no state: call init before running");
  });

  it("fails exactly when a sequence of builder calls breaks a rule, for any sequence", () => {
    type Step = "source" | "init" | "when" | "whenAny";
    fc.assert(
      fc.property(fc.array(fc.constantFrom<Step>("source", "init", "when", "whenAny"), { maxLength: 8 }), (steps) => {
        // The rules, as a model: one source, one init, handlers once and only after init.
        let source = false;
        let init = false;
        let handlers = false;
        let expectedFailure = -1;
        steps.forEach((step, i) => {
          if (expectedFailure >= 0) return;
          const ok =
            step === "source" ? !source : step === "init" ? !init : init && !handlers;
          if (!ok) expectedFailure = i;
          else if (step === "source") source = true;
          else if (step === "init") init = true;
          else handlers = true;
        });
        const definition = new ProjectionDefinition<number, void>();
        let failure = -1;
        for (const [i, step] of steps.entries()) {
          try {
            if (step === "source") definition.fromAll();
            else if (step === "init") definition.init(() => 0);
            else if (step === "when") definition.when({ A: (s) => s + 1 });
            else definition.whenAny((s) => s + 1);
          } catch (e) {
            expect(e).toBeInstanceOf(ProjectionDefinitionError);
            failure = i;
            break;
          }
        }
        expect(failure).toBe(expectedFailure);
        const complete = expectedFailure < 0 && source && init && handlers;
        if (complete) expect(() => definition.complete()).not.toThrow();
        else if (expectedFailure < 0) expect(() => definition.complete()).toThrow(ProjectionDefinitionError);
      }),
      { numRuns: 500 },
    );
  });
});

import { randomUUID } from "node:crypto";
import { EventStoreError, type ProposedEvent, type RecordedEvent } from "../../src/domain";
import type { EventStore, ReadAllOptions } from "../../src/store";

/** How a contract run gets its store: a fresh, empty one per suite. */
export type OpenStore = () => Promise<{ store: EventStore; dispose(): Promise<void> }>;

export function event(type = "Tested", data: unknown = { n: 1 }, metadata: Record<string, unknown> = {}): ProposedEvent {
  return { id: randomUUID(), type, contentType: "application/json", data: Buffer.from(JSON.stringify(data)), metadata };
}

export async function collect(pages: AsyncIterable<RecordedEvent[]>): Promise<RecordedEvent[]> {
  const all: RecordedEvent[] = [];
  for await (const page of pages) all.push(...page);
  return all;
}

export async function failure(work: Promise<unknown> | (() => Promise<unknown>)): Promise<EventStoreError> {
  try {
    await (typeof work === "function" ? work() : work);
  } catch (e) {
    if (e instanceof EventStoreError) return e;
    throw e;
  }
  throw new Error("expected a failure, got success");
}

/**
 * The behaviour every store must have, whatever runs it. Streams are named per test, so the
 * tests share one store without seeing each other's streams.
 */
export function describeStoreContract(name: string, open: OpenStore): void {
  describe(`store contract: ${name}`, () => {
    let store: EventStore;
    let dispose: () => Promise<void>;
    let n = 0;
    const stream = (category = "s") => `${category}-${++n}-${randomUUID().slice(0, 8)}`;

    beforeAll(async () => {
      ({ store, dispose } = await open());
    });
    afterAll(async () => dispose?.());

    const readStream = (s: string, o: Partial<Parameters<EventStore["readStream"]>[1]> = {}) =>
      collect(store.readStream(s, { direction: "forwards", ...o }));
    const readAll = (o: Partial<ReadAllOptions> = {}) =>
      collect(store.readAll({ direction: "forwards", filter: { eventTypes: [], matchers: [] }, ...o }));

    describe("append", () => {
      it("given no stream, when appending with no_stream, then revisions start at 0 and positions increase", async () => {
        const s = stream();
        const [r] = await store.append([{ stream: s, expected: "no_stream", events: [event(), event(), event()] }]);
        expect(r.revision).toBe(2n);
        expect(r.positions).toHaveLength(3);
        expect(r.positions[1]).toBe(r.positions[0] + 1n);
        expect(r.replayed).toBe(false);
        const events = await readStream(s);
        expect(events.map((e) => e.revision)).toEqual([0n, 1n, 2n]);
        expect(events.map((e) => e.position)).toEqual(r.positions);
        expect(events.every((e) => e.storedAt.getTime() === r.committedAt.getTime())).toBe(true);
      });

      it("keeps data byte for byte and metadata as given", async () => {
        const s = stream();
        const bytes = Buffer.from([0, 255, 254, 0x80, 10, 13, 0, 7]);
        const e: ProposedEvent = { ...event(), contentType: "application/octet-stream", data: bytes, metadata: { a: { b: [1, "x", null] }, u: "ü" } };
        const json: ProposedEvent = { ...event(), data: Buffer.from('{"b":1,  "a":2.50}') };
        await store.append([{ stream: s, expected: "any", events: [e, json] }]);
        const [read, readJson] = await readStream(s);
        expect(Buffer.from(read.data).equals(bytes)).toBe(true);
        expect(read.contentType).toBe("application/octet-stream");
        expect(read.metadata).toEqual({ a: { b: [1, "x", null] }, u: "ü" });
        expect(read.id).toBe(e.id);
        expect(Buffer.from(readJson.data).toString()).toBe('{"b":1,  "a":2.50}');
      });

      it.each([
        ["no_stream on an existing stream", "no_stream" as const, "0"],
        ["an exact revision that is behind", 5n, "0"],
      ])("refuses %s with the expected and actual revisions", async (_, expected, actual) => {
        const s = stream();
        await store.append([{ stream: s, expected: "any", events: [event()] }]);
        const e = await failure(store.append([{ stream: s, expected, events: [event()] }]));
        expect(e.kind).toBe("WRONG_EXPECTED_REVISION");
        expect(e.facts).toEqual({ stream: s, expected_revision: String(expected), actual_revision: actual });
        expect(await readStream(s)).toHaveLength(1);
      });

      it("refuses stream_exists and exact revisions on a stream that does not exist, writing nothing", async () => {
        const s = stream();
        expect((await failure(store.append([{ stream: s, expected: "stream_exists", events: [event()] }]))).facts.actual_revision).toBe("none");
        expect((await failure(store.append([{ stream: s, expected: 0n, events: [event()] }]))).kind).toBe("WRONG_EXPECTED_REVISION");
        expect((await failure(store.getStream(s))).kind).toBe("STREAM_NOT_FOUND");
      });

      it("accepts the exact current revision, stream_exists and any", async () => {
        const s = stream();
        await store.append([{ stream: s, expected: "no_stream", events: [event()] }]);
        await store.append([{ stream: s, expected: 0n, events: [event()] }]);
        await store.append([{ stream: s, expected: "stream_exists", events: [event()] }]);
        const [r] = await store.append([{ stream: s, expected: "any", events: [event()] }]);
        expect(r.revision).toBe(3n);
      });

      it("a losing writer takes no global position", async () => {
        const s = stream();
        const [first] = await store.append([{ stream: s, expected: "any", events: [event()] }]);
        await failure(store.append([{ stream: s, expected: "no_stream", events: [event()] }]));
        const [next] = await store.append([{ stream: stream(), expected: "any", events: [event()] }]);
        expect(next.positions[0]).toBe(first.positions[0] + 1n);
      });
    });

    describe("idempotent retries", () => {
      it("a second append with the same ids at the same place answers the first result and writes nothing", async () => {
        const s = stream();
        const events = [event(), event()];
        const [first] = await store.append([{ stream: s, expected: "no_stream", events }]);
        const [again] = await store.append([{ stream: s, expected: "no_stream", events }]);
        expect(again).toEqual({ ...first, replayed: true });
        const [exact] = await store.append([{ stream: stream(), expected: "any", events: [event()] }]);
        expect(exact.positions[0]).toBe(first.positions[1] + 1n);
        expect(await readStream(s)).toHaveLength(2);
      });

      it("also with an exact expected revision and with any", async () => {
        const s = stream();
        await store.append([{ stream: s, expected: "no_stream", events: [event()] }]);
        const events = [event()];
        const [first] = await store.append([{ stream: s, expected: 0n, events }]);
        await store.append([{ stream: s, expected: "any", events: [event()] }]);
        expect((await store.append([{ stream: s, expected: 0n, events }]))[0]).toEqual({ ...first, replayed: true });
        expect((await store.append([{ stream: s, expected: "any", events }]))[0]).toEqual({ ...first, replayed: true });
        expect(await readStream(s)).toHaveLength(3);
      });

      it("the same ids in another stream are DUPLICATE_EVENT_ID and write nothing", async () => {
        const events = [event()];
        await store.append([{ stream: stream(), expected: "any", events }]);
        const other = stream();
        const e = await failure(store.append([{ stream: other, expected: "any", events: [event(), ...events] }]));
        expect(e.kind).toBe("DUPLICATE_EVENT_ID");
        expect(e.facts.event_id).toBe(events[0].id);
        expect((await failure(store.getStream(other))).kind).toBe("STREAM_NOT_FOUND");
      });

      it("a retry that adds new ids to stored ones is DUPLICATE_EVENT_ID", async () => {
        const s = stream();
        const events = [event()];
        await store.append([{ stream: s, expected: "no_stream", events }]);
        expect((await failure(store.append([{ stream: s, expected: "any", events: [...events, event()] }]))).kind).toBe("DUPLICATE_EVENT_ID");
        expect(await readStream(s)).toHaveLength(1);
      });
    });

    describe("multi-stream append", () => {
      it("appends to several streams in one transaction with consecutive positions", async () => {
        const [a, b] = [stream(), stream()];
        const results = await store.append([
          { stream: a, expected: "no_stream", events: [event(), event()] },
          { stream: b, expected: "no_stream", events: [event()] },
        ]);
        expect(results.map((r) => r.stream)).toEqual([a, b]);
        expect(results[1].positions[0]).toBe(results[0].positions[1] + 1n);
        expect(results[0].committedAt).toEqual(results[1].committedAt);
      });

      it("writes nothing when one stream's expected revision fails", async () => {
        const [a, b] = [stream(), stream()];
        await store.append([{ stream: b, expected: "any", events: [event()] }]);
        const e = await failure(store.append([
          { stream: a, expected: "no_stream", events: [event()] },
          { stream: b, expected: "no_stream", events: [event()] },
        ]));
        expect(e.kind).toBe("WRONG_EXPECTED_REVISION");
        expect(e.facts.stream).toBe(b);
        expect((await failure(store.getStream(a))).kind).toBe("STREAM_NOT_FOUND");
        expect(await readStream(b)).toHaveLength(1);
      });
    });

    describe("reading a stream", () => {
      let s: string;
      beforeAll(async () => {
        s = stream();
        // Enough events for several keyset pages.
        for (let i = 0; i < 5; i++) {
          await store.append([{ stream: s, expected: "any", events: Array.from({ length: 500 }, (_, k) => event("Counted", { i: i * 500 + k })) }]);
        }
      });

      it("reads forwards across pages, every revision once and in order", async () => {
        const events = await readStream(s);
        expect(events.map((e) => Number(e.revision))).toEqual(Array.from({ length: 2500 }, (_, i) => i));
        expect(events.map((e) => JSON.parse(Buffer.from(e.data).toString()).i)).toEqual(Array.from({ length: 2500 }, (_, i) => i));
      });

      it("reads backwards from the end, and from a revision, with a limit", async () => {
        expect((await readStream(s, { direction: "backwards", limit: 3n })).map((e) => e.revision)).toEqual([2499n, 2498n, 2497n]);
        expect((await readStream(s, { direction: "backwards", fromRevision: 1n })).map((e) => e.revision)).toEqual([1n, 0n]);
        expect((await readStream(s, { fromRevision: 2498n })).map((e) => e.revision)).toEqual([2498n, 2499n]);
        expect((await readStream(s, { fromRevision: 10n, limit: 1001n })).map((e) => e.revision).at(-1)).toBe(1010n);
        expect(await readStream(s, { fromRevision: 5000n })).toEqual([]);
      });

      it("answers STREAM_NOT_FOUND for a stream that does not exist", async () => {
        expect((await failure(readStream(stream()))).kind).toBe("STREAM_NOT_FOUND");
      });
    });

    describe("reading the whole log", () => {
      let cat: string;
      let a: string;
      let b: string;
      let before: Date;
      beforeAll(async () => {
        cat = `c${randomUUID().slice(0, 8)}`;
        a = `${cat}-1`;
        b = `${cat}-2`;
        await store.append([{ stream: a, expected: "any", events: [event("Opened", {}, { tenant: "t1", n: 1, tags: ["x"] })] }]);
        await new Promise((r) => setTimeout(r, 20));
        before = new Date();
        await store.append([{ stream: b, expected: "any", events: [event("Opened", {}, { tenant: "t2", n: 5 }), event("Closed", {}, { tenant: "t1", n: 10.5, name: "Zed" })] }]);
        await store.append([{ stream: `${cat}x-3`, expected: "any", events: [event("Opened", {}, { tenant: "t3", n: "7" })] }]);
      });

      const mine = (o: Partial<ReadAllOptions>) =>
        readAll({ ...o, filter: { eventTypes: [], matchers: [], streamPrefix: cat, ...o.filter } }).then((es) =>
          es.map((e) => `${e.stream}/${e.revision}`),
        );

      it("reads forwards and backwards in position order, from a position, with a limit", async () => {
        const all = await readAll();
        const positions = all.map((e) => e.position);
        expect(positions).toEqual([...positions].sort((x, y) => (x < y ? -1 : 1)));
        expect(new Set(positions).size).toBe(positions.length);
        const backwards = await readAll({ direction: "backwards", limit: 2n });
        expect(backwards.map((e) => e.position)).toEqual([positions.at(-1), positions.at(-2)]);
        const from = await readAll({ fromPosition: positions[10], limit: 5n });
        expect(from.map((e) => e.position)).toEqual(positions.slice(10, 15));
      });

      it("filters by type, prefix, category and stored-at range", async () => {
        expect(await mine({ filter: { eventTypes: ["Closed"], matchers: [] } })).toEqual([`${b}/1`]);
        expect(await mine({})).toEqual([`${a}/0`, `${b}/0`, `${b}/1`, `${cat}x-3/0`]);
        expect(await mine({ filter: { category: cat, eventTypes: [], matchers: [], streamPrefix: undefined } })).toEqual([`${a}/0`, `${b}/0`, `${b}/1`]);
        expect(await mine({ filter: { storedFrom: before, eventTypes: [], matchers: [] } })).toEqual([`${b}/0`, `${b}/1`, `${cat}x-3/0`]);
        expect(await mine({ filter: { storedBefore: before, eventTypes: [], matchers: [] } })).toEqual([`${a}/0`]);
      });

      it.each([
        ["eq string", { metadataKey: "tenant" }, "eq", "t1", undefined, ["1/0", "2/1"]],
        ["ne", { metadataKey: "tenant" }, "ne", "t1", undefined, ["2/0", "x-3/0"]],
        ["gt number (strings do not compare with numbers)", { metadataKey: "n" }, "gt", 1, undefined, ["2/0", "2/1"]],
        ["gte number", { metadataKey: "n" }, "gte", 5, undefined, ["2/0", "2/1"]],
        ["lt number", { metadataKey: "n" }, "lt", 5, undefined, ["1/0"]],
        ["lte string", { metadataKey: "tenant" }, "lte", "t2", undefined, ["1/0", "2/0", "2/1"]],
        ["in", { metadataKey: "tenant" }, "in", undefined, ["t2", "t3"], ["2/0", "x-3/0"]],
        ["not in (an absent key never matches)", { metadataKey: "name" }, "not_in", undefined, ["Ann"], ["2/1"]],
        ["regex", { metadataKey: "tenant" }, "regex", "^t[23]$", undefined, ["2/0", "x-3/0"]],
        ["eq on an array value", { metadataKey: "tags" }, "eq", ["x"], undefined, ["1/0"]],
        ["type property eq", { property: "type" }, "eq", "Closed", undefined, ["2/1"]],
        ["type property regex", { property: "type" }, "regex", "^Op", undefined, ["1/0", "2/0", "x-3/0"]],
      ] as const)("matches metadata and properties: %s", async (_, field, operator, value, values, expected) => {
        const got = await mine({ filter: { eventTypes: [], matchers: [{ field: field as never, operator, value: value as never, values: values as never }] } });
        expect(got).toEqual(expected.map((x) => `${cat}${x.startsWith("x") ? "" : "-"}${x}`));
      });

      it("matches the id, stored_at and stream properties", async () => {
        const [first] = await readAll({ filter: { streamPrefix: a, eventTypes: [], matchers: [] } });
        expect(await mine({ filter: { eventTypes: [], matchers: [{ field: { property: "id" }, operator: "eq", value: first.id }] } })).toEqual([`${a}/0`]);
        expect(await mine({ filter: { eventTypes: [], matchers: [{ field: { property: "stored_at" }, operator: "lt", value: before.toISOString() }] } })).toEqual([`${a}/0`]);
        // Stream names compare exactly: another case of a name does not match.
        expect(await mine({ filter: { eventTypes: [], matchers: [{ field: { property: "stream" }, operator: "in", values: [b, a.toUpperCase()] }] } })).toEqual([`${b}/0`, `${b}/1`]);
      });

      it("refuses invalid matchers before reading", async () => {
        const bad = [
          { field: { metadataKey: "x" }, operator: "regex", value: "(" },
          { field: { metadataKey: "x" }, operator: "gt", value: true },
          { field: { metadataKey: "x" }, operator: "in", values: [] },
          { field: { property: "type" }, operator: "eq", value: 1 },
          { field: { property: "stored_at" }, operator: "gt", value: "yesterday" },
          { field: { metadataKey: "" }, operator: "eq", value: 1 },
        ];
        for (const m of bad) {
          const e = await failure(readAll({ filter: { eventTypes: [], matchers: [m as never] } }));
          expect(e.kind).toBe("INVALID_ARGUMENT");
          expect(e.facts.field).toMatch(/^filter\.matchers\[0\]/);
        }
      });
    });

    describe("streams", () => {
      it("lists streams by prefix, a page at a time, in name order", async () => {
        const prefix = `list${randomUUID().slice(0, 6)}-`;
        const names = ["c", "a", "e", "b", "d"].map((x) => prefix + x);
        for (const s of names) await store.append([{ stream: s, expected: "any", events: [event()] }]);
        const seen: string[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 10; pages++) {
          const page = await store.listStreams({ prefix, pageSize: 2, after, includeDeleted: false });
          seen.push(...page.streams.map((s) => s.name));
          if (!page.last) break;
          after = page.last;
        }
        expect(seen).toEqual([...names].sort());
      });

      it("describes a stream", async () => {
        const s = stream();
        const [r] = await store.append([{ stream: s, expected: "any", events: [event(), event()] }]);
        const info = await store.getStream(s);
        expect(info).toMatchObject({ name: s, revision: 1n, position: r.positions[1], firstRevision: 0n, deleted: false, tombstoned: false });
      });

      it("soft delete hides the stream; a later append continues after its old revision", async () => {
        const s = stream();
        await store.append([{ stream: s, expected: "any", events: [event(), event()] }]);
        const deleted = await store.deleteStream(s, 1n, "soft");
        expect(deleted).toMatchObject({ deleted: true, firstRevision: 2n });
        expect((await failure(readStream(s))).kind).toBe("STREAM_DELETED");
        const listed = await store.listStreams({ prefix: s, pageSize: 10, includeDeleted: false });
        expect(listed.streams).toEqual([]);
        expect((await store.listStreams({ prefix: s, pageSize: 10, includeDeleted: true })).streams).toHaveLength(1);
        // Deleting again is idempotent.
        expect(await store.deleteStream(s, "any", "soft")).toMatchObject({ deleted: true });
        const [r] = await store.append([{ stream: s, expected: "no_stream", events: [event()] }]);
        expect(r.revision).toBe(2n);
        expect((await readStream(s)).map((e) => e.revision)).toEqual([2n]);
        expect((await store.getStream(s)).deleted).toBe(false);
      });

      it("soft delete checks the expected revision and needs an existing stream", async () => {
        const s = stream();
        expect((await failure(store.deleteStream(s, "any", "soft"))).kind).toBe("STREAM_NOT_FOUND");
        await store.append([{ stream: s, expected: "any", events: [event()] }]);
        expect((await failure(store.deleteStream(s, 3n, "soft"))).kind).toBe("WRONG_EXPECTED_REVISION");
        expect((await readStream(s))).toHaveLength(1);
      });

      it("a tombstoned stream refuses every later append and read, and stays tombstoned", async () => {
        const s = stream();
        await store.append([{ stream: s, expected: "any", events: [event()] }]);
        expect(await store.deleteStream(s, "stream_exists", "tombstone")).toMatchObject({ tombstoned: true, deleted: true });
        for (const expected of ["any", "no_stream"] as const) {
          const e = await failure(store.append([{ stream: s, expected, events: [event()] }]));
          expect(e.kind).toBe("STREAM_TOMBSTONED");
        }
        expect((await failure(readStream(s))).kind).toBe("STREAM_TOMBSTONED");
        expect((await failure(store.deleteStream(s, "any", "soft"))).kind).toBe("STREAM_TOMBSTONED");
        expect(await store.deleteStream(s, "any", "tombstone")).toMatchObject({ tombstoned: true });
      });

      it("tombstoning a name that was never used reserves it", async () => {
        const s = stream();
        await store.deleteStream(s, "any", "tombstone");
        expect((await failure(store.append([{ stream: s, expected: "any", events: [event()] }]))).kind).toBe("STREAM_TOMBSTONED");
      });
    });

    describe("bad input writes nothing", () => {
      const cases: [string, () => Parameters<EventStore["append"]>[0], string, string][] = [
        ["an empty stream name", () => [{ stream: "", expected: "any", events: [event()] }], "INVALID_ARGUMENT", "stream"],
        ["a 257-character name", () => [{ stream: "x".repeat(257), expected: "any", events: [event()] }], "INVALID_ARGUMENT", "stream"],
        ["a control character", () => [{ stream: "a\nb", expected: "any", events: [event()] }], "INVALID_ARGUMENT", "stream"],
        ["an empty type", () => [{ stream: "ok-1", expected: "any", events: [event(""), event()] }], "INVALID_ARGUMENT", "events[0].type"],
        ["no events", () => [{ stream: "ok-1", expected: "any", events: [] }], "INVALID_ARGUMENT", "events"],
        ["a repeated id", () => { const e = event(); return [{ stream: "ok-1", expected: "any", events: [e, e] }]; }, "INVALID_ARGUMENT", "events[1].id"],
        ["an oversized event", () => [{ stream: "ok-1", expected: "any", events: [{ ...event(), data: Buffer.alloc(1024 * 1024 + 1) }] }], "LIMIT_EXCEEDED", "events[0]"],
        ["U+0000 in a type", () => [{ stream: "ok-1", expected: "any", events: [event("A\u0000B")] }], "INVALID_ARGUMENT", "events[0].type"],
        ["U+0000 in a content type", () => [{ stream: "ok-1", expected: "any", events: [{ ...event(), contentType: "text/\u0000" }] }], "INVALID_ARGUMENT", "events[0].content_type"],
        ["U+0000 in metadata", () => [{ stream: "ok-1", expected: "any", events: [event(), event("T", {}, { a: [{ b: "x\u0000" }] })] }], "INVALID_ARGUMENT", "events[1].metadata"],
        ["a stream twice in one append", () => [{ stream: "ok-1", expected: "any", events: [event()] }, { stream: "ok-1", expected: "any", events: [event()] }], "INVALID_ARGUMENT", "appends[1].stream"],
      ];
      it.each(cases)("refuses %s", async (_, appends, kind, field) => {
        const before = await readAll({ direction: "backwards", limit: 1n });
        const e = await failure(() => store.append(appends()));
        expect(e.kind).toBe(kind);
        expect(e.facts.field).toBe(field);
        expect(await readAll({ direction: "backwards", limit: 1n })).toEqual(before);
      });

      it("accepts a 256-character name of multi-byte characters", async () => {
        const s = "ü".repeat(250) + randomUUID().slice(0, 6);
        await store.append([{ stream: s, expected: "any", events: [event()] }]);
        expect((await store.getStream(s)).name).toBe(s);
      });
    });
  });
}

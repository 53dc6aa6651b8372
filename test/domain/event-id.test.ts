import fc from "fast-check";
import { newEventId, parseEventId } from "../../src/domain";

describe("event ids", () => {
  it("server-made ids are UUID-shaped ULIDs that sort by creation", () => {
    const ids = Array.from({ length: 1000 }, () => newEventId());
    for (const id of ids) expect(parseEventId(id, "id")).toBe(id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("accepts any UUID in either case and normalises it to lower case", () => {
    fc.assert(fc.property(fc.uuid(), (u) => expect(parseEventId(u.toUpperCase(), "id")).toBe(u.toLowerCase())));
  });

  it("refuses anything else, naming the field", () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s)) return;
        expect(() => parseEventId(s, "events[2].id")).toThrow(/events\[2\]\.id/);
      }),
    );
  });
});

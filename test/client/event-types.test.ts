import { create } from "@bufbuild/protobuf";
import { DurationSchema } from "@bufbuild/protobuf/wkt";
import { createEventTypeRegistry, EventDecodeError, jsonEventType, protobufEventType, type RecordedEvent } from "../../src/client";

const bytes = (s: string) => new TextEncoder().encode(s);

function recorded(e: Partial<RecordedEvent>): RecordedEvent {
  return {
    id: "0b1c8e5e-0000-4000-8000-000000000001",
    type: "Deposited",
    contentType: "application/json",
    data: bytes("{}"),
    metadata: {},
    stream: "account-1",
    revision: 7n,
    position: 42n,
    storedAt: new Date(0),
    ...e,
  };
}

describe("jsonEventType", () => {
  it("round-trips a payload as JSON, and no data as no bytes", () => {
    const type = jsonEventType<{ amount: number } | undefined>("Deposited");
    expect(type.contentType).toBe("application/json");
    expect(new TextDecoder().decode(type.serialize({ amount: 5 }))).toBe('{"amount":5}');
    expect(type.deserialize(type.serialize({ amount: 5 }))).toEqual({ amount: 5 });
    expect(type.serialize(undefined)).toHaveLength(0);
    expect(type.deserialize(new Uint8Array())).toBeUndefined();
  });
});

describe("protobufEventType", () => {
  it("round-trips a protobuf-es message in the binary format", () => {
    const type = protobufEventType("Waited", DurationSchema);
    const payload = create(DurationSchema, { seconds: 90n, nanos: 5 });
    const data = type.serialize(payload);
    expect(type.contentType).toBe("application/protobuf");
    expect(data).toEqual(new Uint8Array([8, 90, 16, 5]));
    expect(type.deserialize(data)).toEqual(payload);
  });
});

describe("createEventTypeRegistry", () => {
  const waited = protobufEventType("Waited", DurationSchema);
  const registry = createEventTypeRegistry(jsonEventType<{ amount: number }>("Deposited"), waited);

  it("serialises a registered type with its codec and content type, an unregistered one as the client's JSON", () => {
    const proto = registry.toEventData({ type: "Waited", data: create(DurationSchema, { seconds: 1n }), metadata: { a: "b" }, id: "x" });
    expect(proto).toEqual({ type: "Waited", data: new Uint8Array([8, 1]), contentType: "application/protobuf", metadata: { a: "b" }, id: "x" });
    const other = registry.toEventData({ type: "Closed", data: { why: "done" } });
    expect(other).toEqual({ type: "Closed", data: { why: "done" }, metadata: undefined, id: undefined });
  });

  it("decodes a registered type with its codec, as known", () => {
    const e = registry.decode(recorded({ type: "Waited", contentType: "application/protobuf", data: new Uint8Array([8, 3]) }));
    expect(e).toMatchObject({ type: "Waited", known: true, revision: 7n, stream: "account-1" });
    expect(e.payload).toEqual(create(DurationSchema, { seconds: 3n }));
    expect(registry.decode(recorded({ data: bytes('{"amount":2}') }))).toMatchObject({ known: true, payload: { amount: 2 } });
  });

  it("delivers an unregistered type raw: JSON parsed when it parses, else the bytes", () => {
    expect(registry.decode(recorded({ type: "Closed", data: bytes('{"why":"done"}') }))).toMatchObject({ known: false, payload: { why: "done" } });
    const notJson = bytes("{not json");
    expect(registry.decode(recorded({ type: "Closed", data: notJson })).payload).toBe(notJson);
    const binary = new Uint8Array([1, 2, 3]);
    const raw = registry.decode(recorded({ type: "Blob", contentType: "application/octet-stream", data: binary }));
    expect(raw).toMatchObject({ known: false, type: "Blob" });
    expect(raw.payload).toBe(binary);
  });

  it("names the event whose bytes its registered type cannot read", () => {
    const error = (() => {
      try {
        registry.decode(recorded({ data: bytes("{broken") }));
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(EventDecodeError);
    expect((error as Error).message).toMatch(/^Cannot decode event 0b1c8e5e-0000-4000-8000-000000000001 \(stream account-1, revision 7, type Deposited\): /);
    expect((error as EventDecodeError).event).toMatchObject({ stream: "account-1", revision: 7n, type: "Deposited" });
    expect((error as Error).cause).toBeInstanceOf(SyntaxError);
  });

  it("refuses an event stored in another format than its type's, rather than misreading it", () => {
    expect(() => registry.decode(recorded({ type: "Waited", contentType: "application/json", data: bytes("{}") }))).toThrow(
      /revision 7, type Waited\): stored as application\/json, registered as application\/protobuf/,
    );
  });

  it("refuses two different types under one name, and takes the same one twice", () => {
    expect(() => registry.register(jsonEventType("Waited"))).toThrow("Event type Waited is already registered with another definition");
    expect(() => createEventTypeRegistry(jsonEventType("A"), jsonEventType("A"))).toThrow(/already registered/);
    expect(registry.register(waited).get("Waited")).toBe(waited);
    expect(registry.get("Nothing")).toBeUndefined();
  });
});

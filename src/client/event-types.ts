import { fromBinary, toBinary, type DescMessage, type JsonObject, type MessageShape } from "@bufbuild/protobuf";
import type { EventData, RecordedEvent } from "./events";

const JSON_CONTENT_TYPE = "application/json";
const PROTOBUF_CONTENT_TYPE = "application/protobuf";

/** How the payload of one event type travels as bytes. */
export interface EventType<T> {
  name: string;
  contentType: string;
  serialize(payload: T): Uint8Array;
  deserialize(data: Uint8Array): T;
}

/** A recorded event with its payload decoded; `known` is false when its type is not registered. */
export type DomainEvent<T = unknown> = RecordedEvent & { payload: T; known: boolean };

/** An event to append, before its payload is serialised. */
export interface DomainEventData {
  type: string;
  data?: unknown;
  metadata?: JsonObject;
  id?: string;
}

export interface EventTypeRegistry {
  /** Adds a type; a different type already registered under the same name is an error. */
  register(type: EventType<unknown>): EventTypeRegistry;
  get(name: string): EventType<unknown> | undefined;
  /** Serialises with the registered type; an unregistered type goes as the client sends data (JSON, or bytes as they are). */
  toEventData(event: DomainEventData): EventData;
  /** Deserialises with the registered type; an unregistered type is delivered raw (see `rawPayload`), never dropped. */
  decode(event: RecordedEvent): DomainEvent;
}

/** A registered type could not read an event's bytes: the event is named so that it can be found and mended. */
export class EventDecodeError extends Error {
  override name = "EventDecodeError";

  constructor(
    readonly event: Pick<RecordedEvent, "id" | "stream" | "revision" | "type" | "contentType">,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`Cannot decode event ${event.id} (stream ${event.stream}, revision ${event.revision}, type ${event.type}): ${reason}`, options);
  }
}

/** A payload as JSON. No data (undefined) travels as no bytes, so that events without data round-trip. */
export function jsonEventType<T>(name: string): EventType<T> {
  return {
    name,
    contentType: JSON_CONTENT_TYPE,
    serialize: (payload) => new TextEncoder().encode(payload === undefined ? "" : JSON.stringify(payload)),
    deserialize: (data) => parseJson(data) as T,
  };
}

/** A payload as a protobuf-es message of `schema`, in the binary wire format. */
export function protobufEventType<Desc extends DescMessage>(name: string, schema: Desc): EventType<MessageShape<Desc>> {
  return {
    name,
    contentType: PROTOBUF_CONTENT_TYPE,
    serialize: (payload) => toBinary(schema, payload),
    deserialize: (data) => fromBinary(schema, data),
  };
}

export function createEventTypeRegistry(...types: EventType<unknown>[]): EventTypeRegistry {
  const byName = new Map<string, EventType<unknown>>();

  const registry: EventTypeRegistry = {
    register(type) {
      const existing = byName.get(type.name);
      // Two codecs for one name would make what an event decodes to depend on registration order.
      if (existing && existing !== type) throw new Error(`Event type ${type.name} is already registered with another definition`);
      byName.set(type.name, type);
      return registry;
    },
    get: (name) => byName.get(name),
    toEventData(event) {
      const type = byName.get(event.type);
      const base = { type: event.type, metadata: event.metadata, id: event.id };
      return type ? { ...base, data: type.serialize(event.data), contentType: type.contentType } : { ...base, data: event.data };
    },
    decode(event) {
      const type = byName.get(event.type);
      if (!type) return { ...event, payload: rawPayload(event), known: false };
      // Bytes of another format could still "parse" (protobuf reads most byte strings): refuse rather than guess.
      if (event.contentType !== type.contentType) {
        throw new EventDecodeError(event, `stored as ${event.contentType}, registered as ${type.contentType}`);
      }
      try {
        return { ...event, payload: type.deserialize(event.data), known: true };
      } catch (e) {
        throw new EventDecodeError(event, e instanceof Error ? e.message : String(e), { cause: e });
      }
    },
  };
  for (const type of types) registry.register(type);
  return registry;
}

/** An unregistered event's payload: its JSON when it is JSON and parses, else its bytes. */
function rawPayload(event: RecordedEvent): unknown {
  if (event.contentType !== JSON_CONTENT_TYPE) return event.data;
  try {
    return parseJson(event.data);
  } catch {
    return event.data;
  }
}

function parseJson(data: Uint8Array): unknown {
  return data.length === 0 ? undefined : JSON.parse(new TextDecoder().decode(data));
}

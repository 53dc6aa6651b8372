export {
  createEventStoreClient,
  type AppendResult,
  type EventStoreClient,
  type EventStoreClientOptions,
  type ExpectedRevision,
  type ReadAllOptions,
  type ReadStreamOptions,
  type StreamInfo,
} from "./event-store-client";
export {
  DuplicateEventIdError,
  EventStoreClientError,
  InvalidArgumentError,
  LimitExceededError,
  StreamNotFoundError,
  StreamTombstonedError,
  UnavailableError,
  WrongExpectedRevisionError,
} from "./errors";
export { jsonData, linkTo, LINK_EVENT_TYPE, type EventData, type RecordedEvent } from "./events";
export type { EventFilter } from "./filter";
export type { ReconnectPolicy, SubscribeFrom, SubscribeOptions } from "./subscription";

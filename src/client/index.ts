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
  EventIdReusedError,
  EventStoreClientError,
  InvalidArgumentError,
  LimitExceededError,
  PermissionDeniedError,
  StreamNotFoundError,
  StreamTombstonedError,
  UnauthenticatedError,
  UnavailableError,
  WrongExpectedRevisionError,
} from "./errors";
export { jsonData, linkTo, LINK_EVENT_TYPE, type EventData, type RecordedEvent } from "./events";
export type { EventFilter } from "./filter";
export type { ReconnectPolicy, SubscribeFrom, SubscribeOptions } from "./subscription";
export {
  Aggregate,
  type AggregateEvent,
  type EventHandlers,
  type HistoricEvent,
  type PendingEvent,
} from "./aggregate";
export {
  createEventTypeRegistry,
  EventDecodeError,
  jsonEventType,
  protobufEventType,
  type DomainEvent,
  type DomainEventData,
  type EventType,
  type EventTypeRegistry,
} from "./event-types";
export type { Middleware } from "./middleware";
export { createRepository, snapshotStream, type Repository, type RepositoryOptions, type SnapshotOptions } from "./repository";
export {
  LeaseHeldError,
  ProjectionExistsError,
  ProjectionNotFoundError,
  WrongExpectedStatusError,
  WrongExpectedVersionError,
} from "./errors";
export type { ProjectionProgress, ProjectionRecord, ProjectionRecords, ProjectionStatus } from "./projection-records";
export { ProjectionDefinitionError, type ProjectionHandler, type ProjectionHandlers } from "./projection-definition";
export { createQuery, Query, type QueryOptions } from "./query";
export { createProjector, Projector } from "./projector";
export type { ProjectionContext, ProjectorOptions, RunOptions, StateCodec } from "./projector-options";
export { createReadModelProjector, ReadModelProjector, type ReadModelContext } from "./read-model-projector";
export type { AppliedPosition, ReadModel } from "./read-model";
export { createPostgresReadModel, insert, remove, update, type PostgresReadModelOptions, type Row, type TableChange } from "./postgres-read-model";

export type * from "./event-store";
export { openStore, type OpenStoreOptions, type StoreLocation } from "./open-store";
export { migrateStore } from "./postgres/create-postgres-store";
export { connect } from "./postgres/sql";
export type * from "./projection-store";

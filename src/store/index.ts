export type * from "./event-store";
export { DEFAULT_MAX_CONCURRENT_SCANS, DEFAULT_SCAN_WINDOW, DEFAULT_STATEMENT_TIMEOUT_MS, openStore, type OpenStoreOptions, type StoreLocation } from "./open-store";
export { migrateStore } from "./postgres/create-postgres-store";
export { connect } from "./postgres/sql";
export type * from "./projection-store";

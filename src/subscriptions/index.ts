export { createLiveFeed, type LiveFeed, type LiveFeedOptions } from "./live-feed";
export type { QueueLimits } from "./live-queue";
export { subscribe, type StartFrom, type SubscriptionMessage, type SubscriptionRequest, type SubscriptionSettings } from "./subscription";

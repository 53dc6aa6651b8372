export { createMetrics, type ConsumerLag, type MetricSources, type Metrics, type MetricsOptions, type WakeCause } from "./metrics";

import { randomUUID } from "node:crypto";
import type { Metrics } from "../../metrics";
import type { CommitWatcher } from "../event-store";
import type { Sql } from "./sql";

export const NOTIFY_CHANNEL = "eventstore_events";

/** Opens a dedicated connection that passes notifications and reports when it closes. */
export type OpenListenConnection = (handlers: { onnotify: (channel: string, payload: string) => void; onclose: () => void }) => Sql;

export interface CommitListenerOptions {
  open: OpenListenConnection;
  /** The store's pool, to send probes through. */
  sql: Sql;
  /** How often to prove the LISTEN connection alive with a probe notification. */
  probeIntervalMs: number;
  onWarning: (message: string, fields: Record<string, unknown>) => void;
  metrics?: Metrics;
}

/**
 * One LISTEN connection for the whole process. A notification only wakes the watcher; after
 * every (re)connect the watcher re-reads, since notifications sent meanwhile are lost. A
 * connection can also die without a word (a dropped route, a frozen peer): a probe sent through
 * the pool must come back on it within one interval, or it is replaced.
 */
export async function listenForCommits(watcher: CommitWatcher, options: CommitListenerOptions): Promise<() => Promise<void>> {
  let current: Sql | undefined;
  let stopped = false;
  let probe: string | undefined;
  let reopening: Promise<void> | undefined;
  let lastNotificationAt: number | undefined;
  if (options.metrics) options.metrics.sources.lastNotificationAt = () => lastNotificationAt;

  const onnotify = (channel: string, payload: string) => {
    if (channel !== NOTIFY_CHANNEL) return;
    lastNotificationAt = performance.now();
    if (/^\d+$/.test(payload)) watcher.onCommit(BigInt(payload), "notify");
    else if (payload === probe) probe = undefined;
  };

  async function open(): Promise<void> {
    const connection: Sql = options.open({
      onnotify,
      onclose: () => {
        if (connection === current && !stopped) reopen("closed");
      },
    });
    try {
      await connection`listen ${connection(NOTIFY_CHANNEL)}`;
    } catch (e) {
      await connection.end({ timeout: 0 }).catch(() => {});
      throw e;
    }
    if (stopped) return void (await connection.end({ timeout: 0 }).catch(() => {}));
    current = connection;
    probe = undefined;
    watcher.onConnected();
  }

  function reopen(reason: string) {
    if (reopening || stopped) return;
    const old = current;
    current = undefined;
    options.onWarning("LISTEN connection lost; reconnecting", { reason });
    reopening = (async () => {
      void old?.end({ timeout: 0 }).catch(() => {});
      for (let attempt = 1; !stopped; attempt++) {
        try {
          await open();
          options.metrics?.feed.listenReconnects.inc();
          return;
        } catch {
          await new Promise((r) => setTimeout(r, Math.min(5000, 200 * attempt)));
        }
      }
    })().finally(() => (reopening = undefined));
  }

  await open();
  const timer = setInterval(() => {
    if (stopped || reopening) return;
    if (probe !== undefined) return reopen("probe unanswered");
    const token = `probe:${randomUUID()}`;
    probe = token;
    options.sql`select pg_notify(${NOTIFY_CHANNEL}, ${token})`.catch(() => {
      // The database itself is unreachable: not this connection's fault.
      if (probe === token) probe = undefined;
    });
  }, options.probeIntervalMs);
  timer.unref();

  return async () => {
    stopped = true;
    clearInterval(timer);
    await reopening;
    await current?.end({ timeout: 1 }).catch(() => {});
  };
}

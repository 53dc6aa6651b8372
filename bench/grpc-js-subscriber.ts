import * as grpc from "@grpc/grpc-js";
import { grpcJsCallMetadata } from "./bench-auth";
import { serviceClientConstructor } from "./grpc-js-client";

/** A SubscribeResponse as proto-loader decodes it (oneofs: true, longs as strings). */
interface SubscribeResponse {
  message: "confirmation" | "events" | "caughtUp" | "fellBehind" | "checkpoint" | "heartbeat";
  events?: { events: { id: string; position: string }[] };
}

export interface SubscriptionHandlers {
  /** Called in the stream's data handler, as soon as grpc-js has decoded the message. */
  onEvent(id: string): void;
  onFellBehind?(): void;
  /** The stream failed (not by our cancel), before or after catching up. */
  onError?(error: Error): void;
}

export interface Subscription {
  /** Resolves on the caught-up marker; rejects if the stream fails before it. */
  readonly caughtUp: Promise<void>;
  /** Ends the stream (the server sees the cancel); later errors are ignored. */
  cancel(): void;
}

export interface Subscribers {
  /** Opens a subscription on channel `i % channels`. */
  subscribe(i: number, request: object, handlers: SubscriptionHandlers): Subscription;
  close(): void;
}

/**
 * Subscriptions through @grpc/grpc-js, as a user of it would open them, spread over
 * `channels` HTTP/2 connections of their own (a local subchannel pool each).
 */
export function createSubscribers(url: string, channels: number, channelOptions: grpc.ChannelOptions = {}): Subscribers {
  const Client = serviceClientConstructor();
  const clients = Array.from(
    { length: channels },
    () =>
      new Client(new URL(url).host, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1, ...channelOptions }) as unknown as {
        subscribe(request: object, metadata: grpc.Metadata): grpc.ClientReadableStream<SubscribeResponse>;
        close(): void;
      },
  );
  const metadata = grpcJsCallMetadata();
  return {
    subscribe(i, request, handlers) {
      const call = clients[i % channels].subscribe(request, metadata);
      let cancelled = false;
      let onCaughtUp: () => void = () => {};
      let onFailed: (e: Error) => void = () => {};
      const caughtUp = new Promise<void>((resolve, reject) => {
        onCaughtUp = resolve;
        onFailed = reject;
      });
      caughtUp.catch(() => {});
      call.on("data", (res: SubscribeResponse) => {
        if (res.message === "events") for (const e of res.events!.events) handlers.onEvent(e.id);
        else if (res.message === "caughtUp") onCaughtUp();
        else if (res.message === "fellBehind") handlers.onFellBehind?.();
      });
      call.on("error", (e) => {
        if (cancelled) return;
        onFailed(e);
        handlers.onError?.(e);
      });
      call.on("end", () => onFailed(new Error("the subscription ended")));
      return {
        caughtUp,
        cancel() {
          cancelled = true;
          call.cancel();
        },
      };
    },
    close: () => clients.forEach((c) => c.close()),
  };
}

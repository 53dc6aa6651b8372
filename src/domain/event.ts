/** An event a writer proposes: the store assigns its stream, revision, position and time. */
export interface ProposedEvent {
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  /** A JSON object, kept as JSON text. */
  metadata: Record<string, unknown>;
}

/** An event as stored. */
export interface RecordedEvent {
  id: string;
  type: string;
  contentType: string;
  data: Uint8Array;
  metadata: Record<string, unknown>;
  stream: string;
  revision: bigint;
  position: bigint;
  storedAt: Date;
  /** Set when this event was reached through a link event that was resolved: that link. */
  link?: RecordedEvent;
  /**
   * Its eventBytes, when the store measured it on reading: pages and every live subscriber's
   * buffer count it, so it is measured once per event rather than once per use.
   */
  bytes?: number;
}

export const JSON_CONTENT_TYPE = "application/json";

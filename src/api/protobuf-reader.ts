import { isUtf8 } from "node:buffer";

/** Thrown by the reader, and by decoders built on it, to give a message up to protobuf-es. */
export const NOT_HANDLED = Symbol("not handled");

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/**
 * Reads protobuf's wire format as protobuf-es reads it, for hand-written decoders: wherever
 * its answer could differ from protobuf-es's (a truncated field, invalid UTF-8, a leading byte
 * order mark) it throws NOT_HANDLED instead of answering.
 */
export class ProtobufReader {
  pos = 0;
  private readonly buf: Buffer;

  constructor(bytes: Uint8Array) {
    this.buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  tag(): [field: number, wire: number] {
    // One byte holds the tag of every field these messages have.
    const b = this.pos < this.buf.byteLength ? this.buf[this.pos] : 0x80;
    if (b < 0x80) {
      this.pos++;
      return [b >>> 3, b & 7];
    }
    const tag = this.varint32();
    return [tag >>> 3, tag & 7];
  }

  /** The next tag as one number (field << 3 | wire type), for walks that build nothing. */
  rawTag(): number {
    const b = this.pos < this.buf.byteLength ? this.buf[this.pos] : 0x80;
    if (b < 0x80) {
      this.pos++;
      return b;
    }
    return this.varint32();
  }

  /** The end of the length-delimited field that starts here, past its length. */
  end(): number {
    const length = this.varint32() >>> 0;
    const end = this.pos + length;
    if (end > this.buf.byteLength) throw NOT_HANDLED;
    return end;
  }

  /** Checks that a nested message ended exactly where its length said. */
  at(end: number): void {
    if (this.pos !== end) throw NOT_HANDLED;
  }

  string(): string {
    const end = this.end();
    // protobuf-es's TextDecoder drops a leading byte order mark, which Buffer keeps.
    if (end - this.pos >= 3 && this.buf[this.pos] === 0xef && this.buf[this.pos + 1] === 0xbb && this.buf[this.pos + 2] === 0xbf) {
      throw NOT_HANDLED;
    }
    const text = this.buf.toString("utf8", this.pos, end);
    // protobuf-es refuses invalid UTF-8 in proto3 strings; Buffer would replace it with U+FFFD.
    if (text.includes("\uFFFD") && !isUtf8(this.buf.subarray(this.pos, end))) throw NOT_HANDLED;
    this.pos = end;
    return text;
  }

  /** A view into the request, as protobuf-es gives. */
  bytes(): Uint8Array {
    const end = this.end();
    const out = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.pos, end - this.pos);
    this.pos = end;
    return out;
  }

  /** True if any bit of the varint is set, as protobuf-es reads a bool. */
  bool(): boolean {
    let any = false;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.byteLength) throw NOT_HANDLED;
      const b = this.buf[this.pos++];
      if ((b & 0x7f) !== 0) any = true;
      if (b < 0x80) return any;
    }
    throw NOT_HANDLED;
  }

  double(): number {
    if (this.pos + 8 > this.buf.byteLength) throw NOT_HANDLED;
    const value = this.buf.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  /** A varint's low 32 bits as a signed number, as protobuf-es reads int32 and enums. */
  int32(): number {
    return this.varint32() | 0;
  }

  uint64(): bigint {
    const start = this.pos;
    const low = this.varint32() >>> 0;
    if (this.pos - start < 5) return BigInt(low);
    // Longer than 4 bytes: read again, 7 bits at a time, in bigint.
    this.pos = start;
    let value = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (this.pos >= this.buf.byteLength || shift > 63n) throw NOT_HANDLED;
      const b = this.buf[this.pos++];
      value |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return BigInt.asUintN(64, value);
    }
  }

  /** Steps over a field of this wire type without reading it; a group is not handled. */
  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint32();
    else if (wire === WIRE_FIXED64) this.advance(8);
    else if (wire === WIRE_LEN) this.pos = this.end();
    else if (wire === WIRE_FIXED32) this.advance(4);
    else throw NOT_HANDLED;
  }

  private advance(bytes: number): void {
    if (this.pos + bytes > this.buf.byteLength) throw NOT_HANDLED;
    this.pos += bytes;
  }

  /** A varint of up to 10 bytes; its low 32 bits. */
  private varint32(): number {
    let value = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.byteLength) throw NOT_HANDLED;
      const b = this.buf[this.pos++];
      if (i < 5) value |= (b & 0x7f) << (7 * i);
      if (b < 0x80) return value;
    }
    throw NOT_HANDLED;
  }
}

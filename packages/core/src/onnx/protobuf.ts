/**
 * A minimal protobuf encoder: just what writing ONNX needs (varints, length-delimited fields, fixed32
 * floats). Small messages are encoded in memory with `ProtoEncoder`; large byte payloads (weights) are
 * never put in one of these — the model writer streams them and only needs their length up front, which
 * is why the size helpers exist.
 */

import { PickrankError } from "@pickrank/contract";

export const WIRE_VARINT = 0;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

const TWO_POW_32 = 2 ** 32;

/** A number varints cannot carry exactly: a bug in the caller (sizes and dims are safe integers). */
function unsafeVarint(value: number): PickrankError<"INTERNAL"> {
  return new PickrankError("INTERNAL", `Expected a safe integer for a protobuf varint but received ${value}`);
}

/** Bytes a varint takes. Negative numbers are int64 two's complement: always 10 bytes. */
export function varintSize(value: number | bigint): number {
  if (typeof value === "bigint") {
    let v = BigInt.asUintN(64, value);
    let n = 1;
    while (v >= 0x80n) {
      v >>= 7n;
      n++;
    }
    return n;
  }
  if (!Number.isSafeInteger(value)) throw unsafeVarint(value);
  if (value < 0) return 10;
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

export function tagSize(field: number): number {
  return varintSize(field * 8);
}

/** Size of a length-delimited field holding `len` payload bytes (tag + length varint + payload). */
export function lenFieldSize(field: number, len: number): number {
  return tagSize(field) + varintSize(len) + len;
}

/** Growable byte buffer with protobuf field writers. */
export class ProtoEncoder {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }

  get length(): number {
    return this.pos;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }

  rawVarint(value: number | bigint): this {
    this.ensure(10);
    if (typeof value === "bigint" || value < 0 || value >= TWO_POW_32) {
      if (typeof value === "number" && !Number.isSafeInteger(value)) throw unsafeVarint(value);
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
        v >>= 7n;
      }
      this.buf[this.pos++] = Number(v);
      return this;
    }
    let v = value >>> 0;
    while (v >= 0x80) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
    return this;
  }

  tag(field: number, wire: number): this {
    return this.rawVarint(field * 8 + wire);
  }

  rawBytes(data: Uint8Array): this {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
    return this;
  }

  /** int32/int64/enum/bool field (always written, even when 0: callers decide what to omit). */
  int(field: number, value: number | bigint): this {
    return this.tag(field, WIRE_VARINT).rawVarint(value);
  }

  float(field: number, value: number): this {
    this.tag(field, WIRE_FIXED32);
    this.ensure(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.pos, value, true);
    this.pos += 4;
    return this;
  }

  bytes(field: number, data: Uint8Array): this {
    return this.tag(field, WIRE_LEN).rawVarint(data.length).rawBytes(data);
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  /** Embedded message encoded by `fill` into a fresh encoder. */
  message(field: number, fill: (e: ProtoEncoder) => void): this {
    const sub = new ProtoEncoder();
    fill(sub);
    return this.bytes(field, sub.finish());
  }

  packedFloats(field: number, values: readonly number[]): this {
    const data = new Uint8Array(values.length * 4);
    const dv = new DataView(data.buffer);
    values.forEach((v, i) => dv.setFloat32(i * 4, v, true));
    return this.bytes(field, data);
  }

  packedInts(field: number, values: readonly number[]): this {
    const sub = new ProtoEncoder();
    for (const v of values) sub.rawVarint(v);
    return this.bytes(field, sub.finish());
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

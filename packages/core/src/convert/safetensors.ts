/**
 * safetensors reader: 8-byte little-endian header length, a JSON header naming every tensor's dtype,
 * shape and [begin, end) byte range relative to the data section, then the data. Only the header is
 * read up front; tensors are read on demand by offset through one file handle, so a 4 GB file never
 * sits in memory.
 *
 * Optionally hashes the whole file as it goes (`SequentialHasher`): reads that arrive in file order feed
 * the hash for free, and `finish()` reads whatever was skipped.
 */
import { createHash, type Hash } from "node:crypto";
import { open, type FileHandle } from "node:fs/promises";
import { PickrankError } from "@pickrank/contract";

export const SAFETENSORS_DTYPE_SIZE = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_SIZE;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute offset of the first byte in the file. */
  offset: number;
  byteLength: number;
}

/** Largest header we accept (the safetensors format itself caps it at 100 MB). */
const MAX_HEADER = 100_000_000;

function bad(file: string, what: string, cause?: unknown): PickrankError {
  return new PickrankError("BAD_MODEL", `${file}: ${what}`, { cause, details: { file } });
}

/** Feeds a hash with the file's bytes in order, filling small gaps itself. */
export class SequentialHasher {
  private readonly hash: Hash = createHash("sha256");
  private pos = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
    /** Gaps up to this size are read immediately to keep the hash going; larger ones wait for finish(). */
    private readonly maxGap = 256 << 20,
    /** The file's path, for errors. */
    private readonly file = "the safetensors file",
  ) {}

  async observe(offset: number, data: Uint8Array): Promise<void> {
    const end = offset + data.length;
    if (end <= this.pos) return;
    if (offset > this.pos) {
      if (offset - this.pos > this.maxGap) return;
      await this.readThrough(offset);
    }
    this.hash.update(data.subarray(this.pos - offset));
    this.pos = end;
  }

  private async readThrough(end: number): Promise<void> {
    const chunk = new Uint8Array(Math.min(16 << 20, Math.max(1, end - this.pos)));
    while (this.pos < end) {
      const n = Math.min(chunk.length, end - this.pos);
      const { bytesRead } = await this.fh.read(chunk, 0, n, this.pos);
      if (bytesRead === 0) {
        const what = `unexpected end of file at byte ${this.pos} while hashing; expected ${this.size} bytes (did it change meanwhile?)`;
        throw bad(this.file, what);
      }
      this.hash.update(chunk.subarray(0, bytesRead));
      this.pos += bytesRead;
    }
  }

  /** Hashes the rest of the file and returns the hex digest. */
  async finish(): Promise<string> {
    await this.readThrough(this.size);
    return this.hash.digest("hex");
  }
}

export class SafetensorsFile {
  private constructor(
    readonly file: string,
    private readonly fh: FileHandle,
    readonly size: number,
    readonly entries: ReadonlyMap<string, SafetensorsEntry>,
    readonly metadata: Record<string, string>,
    private readonly hasher: SequentialHasher | undefined,
  ) {}

  /** Opens and validates the header (dtypes, shapes, byte ranges against the file size). */
  static async open(file: string, opts: { hash?: boolean } = {}): Promise<SafetensorsFile> {
    let fh: FileHandle;
    try {
      fh = await open(file, "r");
    } catch (e) {
      throw bad(
        file,
        `cannot open the weights file (${(e as NodeJS.ErrnoException).code ?? String(e)}); expected a model.safetensors file`,
        e,
      );
    }
    try {
      const { size } = await fh.stat();
      if (size < 8) throw bad(file, `file is ${size} bytes, too short for a safetensors header (expected at least 8)`);
      const lenBuf = new Uint8Array(8);
      await fh.read(lenBuf, 0, 8, 0);
      const headerLen = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
      if (headerLen < 2 || headerLen > MAX_HEADER || 8 + headerLen > size) {
        throw bad(
          file,
          `header length ${headerLen} does not fit the file (${size} bytes); expected 2..${Math.min(MAX_HEADER, size - 8)} — truncated or not a safetensors file`,
        );
      }
      const headerBytes = new Uint8Array(headerLen);
      await fh.read(headerBytes, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
      } catch (e) {
        throw bad(file, `header is not valid UTF-8 JSON (${(e as Error).message})`, e);
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw bad(file, `header is ${Array.isArray(header) ? "an array" : typeof header}, expected a JSON object of tensors`);
      }
      const dataStart = 8 + headerLen;
      const dataSize = size - dataStart;
      const entries = new Map<string, SafetensorsEntry>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === "__metadata__") {
          if (raw && typeof raw === "object") metadata = raw as Record<string, string>;
          continue;
        }
        const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
        if (!r || typeof r !== "object") throw bad(file, `header entry ${name} is not an object`);
        if (typeof r.dtype !== "string" || !(r.dtype in SAFETENSORS_DTYPE_SIZE)) {
          throw bad(
            file,
            `tensor ${name} has dtype ${JSON.stringify(r.dtype)}; expected one of ${Object.keys(SAFETENSORS_DTYPE_SIZE).join(", ")}`,
          );
        }
        const dtype = r.dtype as SafetensorsDtype;
        if (!Array.isArray(r.shape) || !r.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
          throw bad(file, `tensor ${name} has shape ${JSON.stringify(r.shape)}; expected an array of non-negative integers`);
        }
        const shape = r.shape as number[];
        const offs = r.data_offsets;
        if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isSafeInteger(d) && d >= 0) || offs[0] > offs[1]) {
          throw bad(file, `tensor ${name} has data_offsets ${JSON.stringify(offs)}; expected [begin, end] with 0 <= begin <= end`);
        }
        const [begin, end] = offs as [number, number];
        const expected = shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_SIZE[dtype];
        if (end - begin !== expected) {
          throw bad(file, `tensor ${name} (${dtype} [${shape.join(", ")}]) spans ${end - begin} bytes, expected ${expected}`);
        }
        if (end > dataSize) {
          throw bad(
            file,
            `tensor ${name} ends at data byte ${end} but the file holds only ${dataSize} data bytes (${size} bytes in all) — the file is truncated`,
          );
        }
        entries.set(name, { name, dtype, shape, offset: dataStart + begin, byteLength: expected });
      }
      const sorted = [...entries.values()].sort((a, b) => a.offset - b.offset);
      for (let i = 1; i < sorted.length; i++) {
        const p = sorted[i - 1]!;
        const c = sorted[i]!;
        if (c.offset < p.offset + p.byteLength) throw bad(file, `tensors ${p.name} and ${c.name} overlap`);
      }
      const hasher = opts.hash ? new SequentialHasher(fh, size, undefined, file) : undefined;
      if (hasher) {
        await hasher.observe(0, lenBuf);
        await hasher.observe(8, headerBytes);
      }
      return new SafetensorsFile(file, fh, size, entries, metadata, hasher);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get(name: string): SafetensorsEntry | undefined {
    return this.entries.get(name);
  }

  /** Reads `length` bytes of a tensor starting `start` bytes into it, into a fresh (aligned) buffer. */
  async read(entry: SafetensorsEntry, start = 0, length = entry.byteLength - start): Promise<Uint8Array> {
    if (start < 0 || length < 0 || start + length > entry.byteLength) {
      const range = `[${start}, ${start + length})`;
      throw new PickrankError("INTERNAL", `Expected a read inside tensor ${entry.name} (${entry.byteLength} bytes) but received ${range}`, {
        details: { file: this.file, tensor: entry.name },
      });
    }
    const buf = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await this.fh.read(buf, got, length - got, entry.offset + start + got);
      if (bytesRead === 0) throw bad(this.file, `unexpected end of file while reading tensor ${entry.name}; the file is truncated`);
      got += bytesRead;
    }
    if (this.hasher) await this.hasher.observe(entry.offset + start, buf);
    return buf;
  }

  /** sha256 of the whole file (only when opened with `hash: true`). */
  async sha256(): Promise<string> {
    if (!this.hasher) {
      throw new PickrankError("INTERNAL", `Expected ${this.file} opened with hash: true for sha256() but it was opened without`);
    }
    return this.hasher.finish();
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

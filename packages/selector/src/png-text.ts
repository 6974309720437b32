/**
 * PNG text chunks, written and read without a PNG library: sharp drops text chunks, and the chunks we
 * add must sit beside the ones ComfyUI already wrote (its `prompt` / `workflow` JSON) so that the PNG
 * info readers of ComfyUI and Automatic1111 still see everything.
 */
import { crc32, inflateSync } from "node:zlib";
import { PickrankError } from "@pickrank/contract";

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** One PNG chunk: its 4-character type ("IHDR", "tEXt", "iTXt", "IDAT" …) and its data bytes (without length and CRC). */
export interface PngChunk {
  type: string;
  data: Buffer;
}

/** Whether the bytes start with the 8-byte PNG signature (89 50 4E 47 0D 0A 1A 0A). */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && Buffer.from(bytes.buffer, bytes.byteOffset, 8).equals(PNG_SIGNATURE);
}

/** Splits a PNG into its chunks, checking every CRC (a truncated or corrupt file fails here, not later). */
export function readPngChunks(bytes: Uint8Array): PngChunk[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (!isPng(buf)) {
    throw new PickrankError("BAD_IMAGE", "Expected a PNG file (signature 89 50 4E 47 0D 0A 1A 0A) but the bytes start differently");
  }
  const chunks: PngChunk[] = [];
  let off = 8;
  while (off < buf.length) {
    if (off + 12 > buf.length)
      throw new PickrankError("BAD_IMAGE", `Expected a complete PNG chunk header at byte ${off} but the file ends`);
    const len = buf.readUInt32BE(off);
    const type = buf.toString("latin1", off + 4, off + 8);
    const end = off + 12 + len;
    if (end > buf.length)
      throw new PickrankError("BAD_IMAGE", `Expected ${len} bytes of PNG chunk ${type} at byte ${off} but the file ends`);
    const data = buf.subarray(off + 8, off + 8 + len);
    const crc = buf.readUInt32BE(off + 8 + len);
    const want = crc32(data, crc32(buf.subarray(off + 4, off + 8)));
    if (crc !== want) throw new PickrankError("BAD_IMAGE", `Expected CRC ${want} for PNG chunk ${type} at byte ${off} but found ${crc}`);
    chunks.push({ type, data });
    off = end;
    if (type === "IEND") break;
  }
  if (chunks.at(-1)?.type !== "IEND")
    throw new PickrankError("BAD_IMAGE", "Expected an IEND chunk at the end of the PNG but none was found");
  return chunks;
}

/** Writes a PNG from its chunks: the signature, then each chunk with its big-endian length and CRC-32. */
export function encodePngChunks(chunks: PngChunk[]): Buffer {
  const parts: Buffer[] = [PNG_SIGNATURE];
  for (const c of chunks) {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(c.data.length, 0);
    head.write(c.type, 4, "latin1");
    const tail = Buffer.alloc(4);
    tail.writeUInt32BE(crc32(c.data, crc32(head.subarray(4, 8))), 0);
    parts.push(head, c.data, tail);
  }
  return Buffer.concat(parts);
}

function isLatin1(s: string): boolean {
  // tEXt is Latin-1 only; like Pillow's add_text we switch to iTXt (UTF-8) when a prompt needs it.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the Latin-1 range starts at U+0000 by definition
  return /^[\u0000-\u00ff]*$/.test(s) && !s.includes("\u0000");
}

/** A tEXt chunk when the text is Latin-1, else an uncompressed iTXt chunk (readers treat both alike). */
export function textChunk(keyword: string, text: string): PngChunk {
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || keyword !== keyword.trim()) {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected a PNG text keyword of 1-79 printable Latin-1 characters but received ${JSON.stringify(keyword)}`,
    );
  }
  if (isLatin1(text)) {
    return { type: "tEXt", data: Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0]), Buffer.from(text, "latin1")]) };
  }
  // keyword \0 compression-flag(0) compression-method(0) language-tag \0 translated-keyword \0 text
  return {
    type: "iTXt",
    data: Buffer.concat([Buffer.from(keyword, "latin1"), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(text, "utf8")]),
  };
}

/** Reads tEXt, zTXt and iTXt chunks into keyword → text (the last one wins, as in Pillow). */
export function readPngText(bytes: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of readPngChunks(bytes)) {
    if (!isText(c)) continue;
    const z = c.data.indexOf(0);
    if (z <= 0) continue;
    const key = c.data.toString("latin1", 0, z);
    if (c.type === "tEXt") {
      out[key] = c.data.toString("latin1", z + 1);
    } else if (c.type === "zTXt") {
      out[key] = inflateSync(c.data.subarray(z + 2)).toString("latin1");
    } else {
      const compressed = c.data[z + 1] === 1;
      const langEnd = c.data.indexOf(0, z + 3);
      const transEnd = c.data.indexOf(0, langEnd + 1);
      if (langEnd < 0 || transEnd < 0) continue;
      const body = c.data.subarray(transEnd + 1);
      out[key] = (compressed ? inflateSync(body) : body).toString("utf8");
    }
  }
  return out;
}

function isText(c: PngChunk): boolean {
  return c.type === "tEXt" || c.type === "zTXt" || c.type === "iTXt";
}

function keywordOf(c: PngChunk): string {
  const z = c.data.indexOf(0);
  return c.data.toString("latin1", 0, z < 0 ? c.data.length : z);
}

/**
 * Returns the PNG with the given text entries set: existing chunks with the same keyword are dropped
 * (a re-run replaces its own metadata instead of stacking copies), all other chunks are kept, and
 * every text chunk (the ones already there first, in their order, then the new ones) goes just before
 * the first IDAT, where Automatic1111 and ComfyUI (through Pillow) write theirs: Pillow's
 * `Image.open(f).info`, which most "PNG info" readers use, only sees text chunks that come before the
 * image data until the image is loaded. Throws BAD_IMAGE for a PNG that does not parse or has no
 * IDAT, BAD_INPUT for a keyword PNG does not allow.
 */
export function setPngText(png: Uint8Array, entries: Record<string, string>): Buffer {
  const keys = new Set(Object.keys(entries));
  const chunks = readPngChunks(png);
  const texts = chunks.filter((c) => isText(c) && !keys.has(keywordOf(c)));
  for (const [k, v] of Object.entries(entries)) texts.push(textChunk(k, v));
  const rest = chunks.filter((c) => !isText(c));
  const idat = rest.findIndex((c) => c.type === "IDAT");
  if (idat < 0) throw new PickrankError("BAD_IMAGE", "Expected at least one IDAT chunk (the image data) in the PNG but found none");
  return encodePngChunks([...rest.slice(0, idat), ...texts, ...rest.slice(idat)]);
}

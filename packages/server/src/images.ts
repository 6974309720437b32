/**
 * Images as requests carry them → the Scorer's inputs: base64 PNG/JPEG/WebP (or a data: URL) and raw
 * 8-bit RGB/RGBA with width and height in JSON; file parts in multipart (raw when the request gives
 * width and height). Each failure is a PickrankError naming the field ("images[2]", "items[0].image").
 */
import { PickrankError, invalidParameter } from "@pickrank/contract";
import type { ImageInput } from "@pickrank/core";
import type { ImageRef } from "./schemas.ts";

/** A file part of a multipart request, read whole. */
export interface FilePart {
  field: string;
  filename: string | undefined;
  mimetype: string;
  data: Buffer;
}

/** Dimensions that make an `application/octet-stream` part raw pixels. */
export interface RawDims {
  width: number;
  height: number;
  channels: 3 | 4;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const DATA_URL = /^data:([^;,]*)(;[^,]*)?,/;

/** Decodes base64 (standard or URL-safe, whitespace ignored); BAD_INPUT naming `field` otherwise. */
export function decodeBase64(text: string, field: string): Buffer {
  const s = text.replace(/\s+/g, "");
  if (s.length === 0 || !(BASE64.test(s) || BASE64URL.test(s))) {
    throw invalidParameter(field, "base64 text (A–Z, a–z, 0–9, +/ or -_, = padding)", text);
  }
  return Buffer.from(s, BASE64.test(s) ? "base64" : "base64url");
}

/** Whether an image of `width × height` passes `maxPixels`; PAYLOAD_TOO_LARGE otherwise. */
export function checkPixels(width: number, height: number, maxPixels: number, field: string): void {
  if (width * height > maxPixels) {
    throw new PickrankError(
      "PAYLOAD_TOO_LARGE",
      `Expected an image of at most ${maxPixels} pixels (the server's --max-pixels) ` +
        `but ${field} is ${width}×${height} = ${width * height}`,
      { details: { parameter: field, limit: maxPixels, received: width * height } },
    );
  }
}

function rawInput(data: Uint8Array, dims: RawDims, field: string, maxPixels: number): ImageInput {
  checkPixels(dims.width, dims.height, maxPixels, field);
  const expected = dims.width * dims.height * dims.channels;
  if (data.length !== expected) {
    throw new PickrankError(
      "BAD_IMAGE",
      `Expected ${expected} bytes of raw pixels for ${field} (width ${dims.width} × height ${dims.height} × channels ${dims.channels}) ` +
        `but received ${data.length}`,
      { details: { parameter: field, expected, received: data.length } },
    );
  }
  return { data, width: dims.width, height: dims.height, channels: dims.channels };
}

/**
 * One image reference of a request → a Scorer input. `parts` are the multipart request's file parts
 * by field name (undefined for JSON). Throws BAD_INPUT (bad base64, unknown part), BAD_IMAGE (raw
 * length mismatch), PAYLOAD_TOO_LARGE (raw pixels over `maxPixels`; encoded images are checked from
 * their header when preprocessed).
 */
export function resolveImageRef(ref: ImageRef, field: string, maxPixels: number, parts?: ReadonlyMap<string, FilePart>): ImageInput {
  if (typeof ref === "string") {
    const m = DATA_URL.exec(ref);
    if (m && !(m[2] ?? "").includes("base64")) throw invalidParameter(field, "a base64 data: URL (data:image/png;base64,…)", ref);
    return decodeBase64(m ? ref.slice(m[0].length) : ref, field);
  }
  if ("raw" in ref) {
    return rawInput(
      decodeBase64(ref.raw, `${field}.raw`),
      { width: ref.width, height: ref.height, channels: ref.channels },
      field,
      maxPixels,
    );
  }
  if (!parts)
    throw invalidParameter(
      `${field}.part`,
      "an image inline (base64 or raw) in a JSON request; {part} works in multipart requests only",
      ref,
    );
  const part = parts.get(ref.part);
  if (!part)
    throw invalidParameter(
      `${field}.part`,
      `the name of a file part of this request (${[...parts.keys()].join(", ") || "none sent"})`,
      ref.part,
    );
  const dims = ref.width !== undefined || ref.height !== undefined ? dimsOf(ref, `${field}`) : undefined;
  return partInput(part, dims, field, maxPixels);
}

function dimsOf(ref: { width?: number | undefined; height?: number | undefined; channels?: 3 | 4 | undefined }, field: string): RawDims {
  if (ref.width === undefined || ref.height === undefined) {
    throw invalidParameter(`${field}.width/height`, "both width and height for raw pixels", ref.width ?? ref.height);
  }
  return { width: ref.width, height: ref.height, channels: ref.channels ?? 3 };
}

const ENCODED_TYPES = new Set([
  "image/png",
  "image/jpeg",
  "image/jpg",
  "image/webp",
  "image/gif",
  "image/tiff",
  "image/avif",
  "image/heif",
]);

/**
 * A file part → a Scorer input: image/* parts are encoded images; application/octet-stream parts are
 * raw pixels when `dims` is given and encoded images otherwise. BAD_IMAGE for any other content type.
 */
export function partInput(part: FilePart, dims: RawDims | undefined, field: string, maxPixels: number): ImageInput {
  const type = part.mimetype.split(";")[0]!.trim().toLowerCase();
  if (type === "application/octet-stream" && dims) return rawInput(part.data, dims, field, maxPixels);
  if (type === "application/octet-stream" || ENCODED_TYPES.has(type)) return part.data;
  throw new PickrankError(
    "BAD_IMAGE",
    `Expected a file part of type image/png, image/jpeg, image/webp or application/octet-stream for ${field} ` +
      `but received ${type || "no type"}`,
    { details: { parameter: field, format: type } },
  );
}

/** The raw dimensions given as multipart text fields `width`, `height`, `channels` (all or none). */
export function rawDimsFromFields(fields: ReadonlyMap<string, string>): RawDims | undefined {
  const w = fields.get("width");
  const h = fields.get("height");
  const c = fields.get("channels") ?? "3";
  if (w === undefined && h === undefined) return undefined;
  const width = Number(w);
  const height = Number(h);
  if (!Number.isInteger(width) || width < 1) throw invalidParameter("width", "a positive integer (the raw parts' width)", w);
  if (!Number.isInteger(height) || height < 1) throw invalidParameter("height", "a positive integer (the raw parts' height)", h);
  if (c !== "3" && c !== "4") throw invalidParameter("channels", "3 (RGB) or 4 (RGBA)", c);
  return { width, height, channels: c === "3" ? 3 : 4 };
}

/**
 * Image preprocessing of the PickScore reference: transformers 5's CLIPImageProcessor, which decodes
 * with PIL and then runs torchvision on uint8 tensors:
 * convert to RGB (alpha dropped, not composited) → resize the shortest edge to `size`, bicubic with
 * antialias (long edge = floor(size·long/short)) → center crop size×size (offset floor((len−size)/2))
 * → (x − mean·255)/(std·255) in float32 (rescale fused into normalize) → CHW Float32Array.
 *
 * sharp only decodes (EXIF orientation applied, ICC profiles ignored as PIL ignores them), and where its
 * pixels are not PIL's `convert("RGB")` (CMYK, GIF transparency) ./pil-convert.ts gives PIL's; the resize
 * is ported (./resample.ts) because sharp's cubic kernel is a different filter with different rounding.
 * Deliberate differences from the reference: EXIF orientation is applied (as transformers' `load_image`
 * does), and 16-bit gray keeps its high byte (PIL's convert clips it to 255, a near-white image).
 * The older PIL path (transformers 4's slow processor) is kept as `flavour: "pil"` for comparison.
 */
import { readFile, stat } from "node:fs/promises";
import type { Metadata, SharpOptions } from "sharp";
import { PickrankError, invalidParameter } from "@pickrank/contract";
import { cmykToRgb, fillGifBackground, readGifFirstFrame } from "./pil-convert.ts";
import { bicubicResizeCrop } from "./resample.ts";

/** An image to score: a file path, the encoded bytes (PNG, JPEG, WebP, GIF …), or decoded RawImage pixels. */
export type ImageInput = string | Uint8Array | RawImage;
/** Decoded pixels: `data` is height × width × channels bytes (HWC, uint8), channels 1 (gray), 3 (RGB) or 4 (RGBA). */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3 | 4;
}
/**
 * CLIPImageProcessor's settings: the output side `size` in pixels (224 for PickScore: shortest edge
 * resized to it, then center crop size×size), per-channel RGB mean and std (on the 0..1 scale), and the
 * largest width×height in pixels accepted (BAD_IMAGE above).
 */
export interface PreprocessSettings {
  size: number;
  mean: [number, number, number];
  std: [number, number, number];
  /**
   * Largest accepted width×height, checked from the header before decoding. Default
   * `DEFAULT_MAX_PIXELS` (178,956,970: what PIL opens before its DecompressionBombError).
   */
  maxPixels?: number;
}

/**
 * PIL's `Image.MAX_IMAGE_PIXELS` (1024·1024·1024 / 4 / 3 = 89,478,485): above it PIL warns
 * (DecompressionBombWarning) and still opens the image.
 */
export const PIL_MAX_IMAGE_PIXELS = 89_478_485;

/**
 * Default pixel cap: twice `PIL_MAX_IMAGE_PIXELS` (178,956,970), where PIL raises DecompressionBombError.
 * Every image the reference opens, with or without its warning, is accepted; larger ones are refused
 * from the header, before any pixel is decoded. `--max-pixels` / `maxPixels` raise or lower it.
 */
export const DEFAULT_MAX_PIXELS = 2 * PIL_MAX_IMAGE_PIXELS;

/** laion/CLIP-ViT-H-14-laion2B-s32B-b79K's preprocessor_config.json (what PickScore_v1 uses). */
export const CLIP_PREPROCESS: PreprocessSettings = Object.freeze({
  size: 224,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
  maxPixels: DEFAULT_MAX_PIXELS,
}) as PreprocessSettings;

/** Decoded pixels, interleaved; 1 or 2 channels = gray (+alpha), 3 or 4 = RGB (+alpha). */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** Preprocesses one image into a CHW float32 tensor of shape [3, size, size]. */
export async function preprocessImage(input: ImageInput, settings?: Partial<PreprocessSettings>): Promise<Float32Array> {
  const s = resolveSettings(settings);
  const img = await decodeImage(input, s.maxPixels ?? DEFAULT_MAX_PIXELS);
  return preprocessDecoded(img, s);
}

/** Validates settings merged over CLIP_PREPROCESS. */
function resolveSettings(settings: Partial<PreprocessSettings> | undefined): PreprocessSettings {
  if (settings === undefined) return CLIP_PREPROCESS;
  if (typeof settings !== "object" || settings === null)
    throw invalidParameter("settings", "an object of preprocessing settings", settings);
  const s: PreprocessSettings = { ...CLIP_PREPROCESS, ...settings };
  if (!Number.isInteger(s.size) || s.size < 1 || s.size > 4096) throw invalidParameter("size", "an integer from 1 to 4096", s.size);
  for (const key of ["mean", "std"] as const) {
    const v = s[key];
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === "number" && Number.isFinite(x))) {
      throw invalidParameter(key, "an array of 3 finite numbers", v);
    }
  }
  if (!s.std.every((x) => x !== 0)) throw invalidParameter("std", "3 non-zero numbers", s.std);
  if (s.maxPixels !== undefined && (!Number.isInteger(s.maxPixels) || s.maxPixels < 1)) {
    throw invalidParameter("maxPixels", "a positive integer", s.maxPixels);
  }
  return s;
}

function fmtPixels(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(1)} megapixels` : `${n} pixels`;
}

function tooLarge(width: number, height: number, maxPixels: number, what: string): PickrankError {
  return new PickrankError(
    "BAD_IMAGE",
    `Expected an image of at most ${fmtPixels(maxPixels)} (${maxPixels} pixels) but ${what} is ${width}×${height} = ` +
      `${fmtPixels(width * height)}; if you trust this image, raise the limit with --max-pixels (maxPixels in the API)`,
    { details: { width, height, maxPixels } },
  );
}

/** Decodes (or validates) an input to interleaved uint8 pixels; BAD_IMAGE / NOT_FOUND on failure. */
export async function decodeImage(input: ImageInput, maxPixels: number = DEFAULT_MAX_PIXELS): Promise<DecodedImage> {
  if (typeof input === "string") {
    if (input.length === 0) throw invalidParameter("image", "an image path, encoded image bytes or a RawImage", input);
    const st = await stat(input).catch(() => undefined);
    if (!st) {
      throw new PickrankError("NOT_FOUND", `Expected an image file at ${input} but it does not exist`, { details: { path: input } });
    }
    if (!st.isFile()) {
      throw new PickrankError("BAD_IMAGE", `Expected an image file at ${input} but it is not a regular file`, { details: { path: input } });
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(input);
    } catch (e) {
      throw new PickrankError("BAD_IMAGE", `Expected a readable image file at ${input} but reading failed: ${(e as Error).message}`, {
        cause: e,
        details: { path: input },
      });
    }
    return decodeBytes(bytes, maxPixels, input);
  }
  if (input instanceof Uint8Array) return decodeBytes(input, maxPixels, undefined);
  if (typeof input === "object" && input !== null && "data" in input) return checkRaw(input, maxPixels);
  throw invalidParameter(
    "image",
    "an image path, encoded image bytes (Uint8Array/Buffer) or a RawImage {data,width,height,channels}",
    input,
  );
}

function checkRaw(raw: RawImage, maxPixels: number): DecodedImage {
  const { data, width, height, channels } = raw;
  if (!(data instanceof Uint8Array)) throw invalidParameter("image.data", "a Uint8Array of interleaved pixels", data);
  if (!Number.isInteger(width) || width < 1) throw invalidParameter("image.width", "a positive integer", width);
  if (!Number.isInteger(height) || height < 1) throw invalidParameter("image.height", "a positive integer", height);
  if (channels !== 1 && channels !== 3 && channels !== 4) throw invalidParameter("image.channels", "1, 3 or 4", channels);
  if (width * height > maxPixels) throw tooLarge(width, height, maxPixels, "the raw image");
  const expected = width * height * channels;
  if (data.length !== expected) {
    throw new PickrankError(
      "BAD_IMAGE",
      `Expected image.data of length ${expected} (width ${width} × height ${height} × channels ${channels}) but received ${data.length} bytes`,
      { details: { expected, received: data.length } },
    );
  }
  return { data, width, height, channels };
}

/** sharp (libvips), imported on first decode so that loading pickrank does not load libvips. */
async function loadSharp(): Promise<typeof import("sharp").default> {
  return (await import("sharp")).default;
}

async function decodeBytes(bytes: Uint8Array, maxPixels: number, file: string | undefined): Promise<DecodedImage> {
  const what = file ?? "the image";
  const sharp = await loadSharp();
  if (bytes.length === 0) {
    throw new PickrankError(
      "BAD_IMAGE",
      `Expected an encoded image (PNG, JPEG, WebP, …) but ${file ? `${file} is an empty file` : "the bytes are empty"}`,
      {
        details: { path: file },
      },
    );
  }
  const opts: SharpOptions = {
    // Truncated or corrupt pixel data is refused rather than half-decoded (PIL refuses it too).
    failOn: "error",
    // Header-checked before any pixel is decoded (decompression bombs).
    limitInputPixels: maxPixels,
    // PIL applies no colour management; neither do we.
    ignoreIcc: true,
  };
  let meta: Metadata;
  try {
    // Header only, with no pixel limit, so an oversized image gets the clear message below.
    meta = await sharp(bytes, { ...opts, limitInputPixels: false }).metadata();
  } catch (e) {
    throw new PickrankError(
      "BAD_IMAGE",
      `Expected a decodable image (PNG, JPEG, WebP, …) but ${what} could not be read: ${sharpReason(e)}`,
      {
        cause: e,
        details: { path: file },
      },
    );
  }
  // Raster formats only: SVG would be rendered by librsvg (and can reference other files), which the
  // reference (PIL) cannot open anyway.
  if (!RASTER_FORMATS.has(String(meta.format))) {
    throw new PickrankError(
      "BAD_IMAGE",
      `Expected a raster image (${[...RASTER_FORMATS].join(", ")}) but ${what} is ${String(meta.format)}`,
      { details: { path: file, format: meta.format } },
    );
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (w < 1 || h < 1) {
    throw new PickrankError("BAD_IMAGE", `Expected an image with a positive width and height but ${what} is ${w}×${h}`, {
      details: { path: file },
    });
  }
  if (w * h > maxPixels) throw tooLarge(w, h, maxPixels, what);
  try {
    return await decodePixels(bytes, meta, opts);
  } catch (e) {
    throw new PickrankError("BAD_IMAGE", `Expected a complete, decodable image but decoding ${what} failed: ${sharpReason(e)}`, {
      cause: e,
      details: { path: file },
    });
  }
}

/**
 * Pixels as PIL's `Image.open(f).convert("RGB")` has them (alpha kept as a 4th band, skipped later).
 * rotate(): EXIF orientation applied. toColourspace("srgb") turns gray into 3 bands and 16-bit into
 * 8-bit by the high byte (PIL's rawmodes RGB;16B, RGBA;16B, LA;16B do the same). CMYK stays CMYK
 * (no fallback profile) and is converted as PIL converts it; GIFs get PIL's colour where libvips
 * leaves transparent black.
 */
async function decodePixels(bytes: Uint8Array, meta: Metadata, opts: SharpOptions): Promise<DecodedImage> {
  const sharp = await loadSharp();
  if (meta.space === "cmyk") {
    // 16-bit CMYK (TIFF) comes out as 16-bit and keeps its high byte, as PIL's CMYK;16B does.
    const wide = meta.depth === "ushort";
    const { data, info } = await sharp(bytes, opts)
      .rotate()
      .pipelineColourspace("cmyk")
      .toColourspace("cmyk")
      .raw({ depth: wide ? "ushort" : "uchar" })
      .toBuffer({ resolveWithObject: true });
    const cmyk = wide ? highBytes(data) : data;
    if (info.channels >= 4) return cmykToRgb(cmyk, info.width, info.height, info.channels);
  }
  const { data, info } = await sharp(bytes, opts)
    .rotate()
    .toColourspace("srgb")
    .raw({ depth: "uchar" })
    .toBuffer({ resolveWithObject: true });
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.length);
  const img = { data: pixels, width: info.width, height: info.height, channels: info.channels };
  if (meta.format === "gif") {
    const frame = readGifFirstFrame(bytes);
    if (frame) fillGifBackground(img, frame);
  }
  return img;
}

/** The high byte of each native-endian 16-bit sample. */
function highBytes(data: Buffer): Uint8Array {
  const samples = new Uint16Array(data.buffer, data.byteOffset, data.length / 2);
  const out = new Uint8Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = (samples[i] as number) >> 8;
  return out;
}

const RASTER_FORMATS = new Set(["png", "jpeg", "webp", "gif", "tiff", "heif", "avif"]);

function sharpReason(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split("\n")[0]?.trim() || "unknown error";
}

/** "torch": transformers 5 (torchvision, the reference); "pil": transformers 4's slow PIL + numpy path. */
export type PreprocessFlavour = "torch" | "pil";

/** Float32 LUT of the normalized value of each uint8 level per channel, rounding as the reference does. */
const lutCache = new Map<string, Float32Array>();
function normalizeLut(mean: readonly number[], std: readonly number[], flavour: PreprocessFlavour): Float32Array {
  const key = `${flavour}|${mean.join(",")}|${std.join(",")}`;
  let lut = lutCache.get(key);
  if (lut) return lut;
  const f = Math.fround;
  const rescale = 1 / 255;
  lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = f(mean[c] as number);
    const sd = f(std[c] as number);
    // torch: mean and std become float32 tensors, are multiplied by 1/rescale_factor in float32, and
    // the uint8 image (as float32) is normalized with them: fused rescale + normalize.
    const mt = f(m * f(1 / rescale));
    const st = f(sd * f(1 / rescale));
    for (let v = 0; v < 256; v++) {
      lut[c * 256 + v] =
        flavour === "torch"
          ? f(f(v - mt) / st)
          : // numpy: rescale in float64, cast to float32, then (x − mean)/std in float32.
            f(f(f(v * rescale) - m) / sd);
    }
  }
  if (lutCache.size > 16) lutCache.clear();
  lutCache.set(key, lut);
  return lut;
}

/** Resize (shortest edge), center crop and normalize already decoded pixels. */
export function preprocessDecoded(
  img: DecodedImage,
  s: PreprocessSettings = CLIP_PREPROCESS,
  flavour: PreprocessFlavour = "torch",
): Float32Array {
  const { width, height, channels } = img;
  const size = s.size;
  // transformers' get_resize_output_image_size(default_to_square=False): int(size * long / short).
  let outW: number;
  let outH: number;
  if (width <= height) {
    outW = size;
    outH = Math.floor((size * height) / width);
  } else {
    outH = size;
    outW = Math.floor((size * width) / height);
  }
  // transformers' center_crop: top = (h − crop) // 2. The resize makes both sides ≥ size.
  const top = Math.floor((outH - size) / 2);
  const left = Math.floor((outW - size) / 2);
  const ch: 1 | 3 = channels >= 3 ? 3 : 1;
  const crop = bicubicResizeCrop({
    src: img.data,
    width,
    height,
    srcChannels: channels,
    channels: ch,
    outWidth: outW,
    outHeight: outH,
    cropLeft: left,
    cropTop: top,
    cropWidth: size,
    cropHeight: size,
    resampler: flavour,
  });
  const lut = normalizeLut(s.mean, s.std, flavour);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  if (ch === 3) {
    for (let i = 0, p = 0; i < plane; i++, p += 3) {
      out[i] = lut[crop[p] as number] as number;
      out[plane + i] = lut[256 + (crop[p + 1] as number)] as number;
      out[2 * plane + i] = lut[512 + (crop[p + 2] as number)] as number;
    }
  } else {
    // Gray: the reference converts L → RGB (three equal channels) before resizing; resizing once is equal.
    for (let i = 0; i < plane; i++) {
      const v = crop[i] as number;
      out[i] = lut[v] as number;
      out[plane + i] = lut[256 + v] as number;
      out[2 * plane + i] = lut[512 + v] as number;
    }
  }
  return out;
}

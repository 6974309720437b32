/**
 * Where libvips' decoding and PIL's `Image.open(f).convert("RGB")` part ways, the PIL side ported.
 *
 * The reference (transformers' CLIPImageProcessor) sees what PIL gives. libvips gives the same pixels
 * for every PNG, JPEG, WebP and TIFF mode except two kinds, and this module holds PIL's answer for each:
 * - CMYK (JPEG, also YCCK after libjpeg's own conversion, and TIFF): libvips converts through a fallback
 *   ICC profile; PIL applies no profile and uses the naive formula of its `Convert.c` (`cmyk2rgb`).
 * - GIF: libvips (libnsgif) makes transparent pixels and the screen outside the first frame (0,0,0,0);
 *   PIL keeps the palette image, so those pixels take the palette colour of the transparent index (or of
 *   index 0 when the GIF has none) once converted to RGB.
 */
import type { DecodedImage } from "./image.ts";

/**
 * Pillow's `cmyk2rgb` (src/libImaging/Convert.c, Pillow ≥ 8.1): with nk = 255 − K,
 * R = nk − C·nk/255 (and G from M, B from Y), where x·y/255 is `MULDIV255` (rounded).
 * `src` holds `channels` ≥ 4 bands per pixel, C M Y K first, as PIL's mode CMYK has them (libjpeg's
 * Adobe inversion already undone); extra bands (alpha) are dropped. Returns 3-band RGB.
 */
export function cmykToRgb(src: Uint8Array, width: number, height: number, channels: number): DecodedImage {
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const muldiv255 = (a: number, b: number): number => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0, s = 0, d = 0; i < n; i++, s += channels, d += 3) {
    const nk = 255 - (src[s + 3] as number);
    out[d] = nk - muldiv255(src[s] as number, nk);
    out[d + 1] = nk - muldiv255(src[s + 1] as number, nk);
    out[d + 2] = nk - muldiv255(src[s + 2] as number, nk);
  }
  return { data: out, width, height, channels: 3 };
}

/** What PIL needs from a GIF's first frame to colour the pixels libvips leaves transparent black. */
export interface GifFirstFrame {
  screenWidth: number;
  screenHeight: number;
  /** The first image's rectangle on the logical screen. */
  left: number;
  top: number;
  width: number;
  height: number;
  /** The palette in force for that image (its local table, else the global one), RGB triplets. */
  palette: Uint8Array | undefined;
  /** The transparent index of the graphic control extension before the image, if any. */
  transparentIndex: number | undefined;
}

/**
 * Reads a GIF's header blocks up to its first image descriptor (no pixel data is decoded). Returns
 * undefined for bytes that are not a GIF or that end before the first image: libvips reports those.
 */
export function readGifFirstFrame(bytes: Uint8Array): GifFirstFrame | undefined {
  const u16 = (p: number): number => (bytes[p] as number) | ((bytes[p + 1] as number) << 8);
  if (bytes.length < 13 || String.fromCharCode(...bytes.subarray(0, 3)) !== "GIF") return undefined;
  const flags = bytes[10] as number;
  let p = 13;
  let global: Uint8Array | undefined;
  if (flags & 0x80) {
    const size = 3 * (2 << (flags & 7));
    global = bytes.subarray(p, p + size);
    p += size;
  }
  let transparentIndex: number | undefined;
  while (p < bytes.length) {
    const block = bytes[p] as number;
    if (block === 0x2c) {
      if (p + 10 > bytes.length) return undefined;
      const imageFlags = bytes[p + 9] as number;
      const local = imageFlags & 0x80 ? bytes.subarray(p + 10, p + 10 + 3 * (2 << (imageFlags & 7))) : undefined;
      return {
        screenWidth: u16(6),
        screenHeight: u16(8),
        left: u16(p + 1),
        top: u16(p + 3),
        width: u16(p + 5),
        height: u16(p + 7),
        palette: local ?? global,
        transparentIndex,
      };
    }
    if (block !== 0x21) return undefined;
    // Extension: label, then data sub-blocks until a zero length. 0xF9 = graphic control extension.
    const label = bytes[p + 1];
    if (label === 0xf9 && bytes[p + 2] === 4 && ((bytes[p + 3] as number) & 1) === 1) transparentIndex = bytes[p + 6];
    else if (label === 0xf9) transparentIndex = undefined;
    p += 2;
    while (p < bytes.length && bytes[p] !== 0) p += (bytes[p] as number) + 1;
    p += 1;
  }
  return undefined;
}

/**
 * Gives the pixels PIL sees as the transparent index (or, with no transparency, the screen outside the
 * first frame, which PIL fills with index 0) their palette colour, in place. `img` is libvips' RGB or
 * RGBA decoding of the GIF's first frame on its logical screen. Returns whether the frame was usable.
 */
export function fillGifBackground(img: DecodedImage, frame: GifFirstFrame): boolean {
  const { data, width, height, channels } = img;
  if (!frame.palette || channels < 3 || width !== frame.screenWidth || height !== frame.screenHeight) return false;
  const colour = (index: number): [number, number, number] => {
    const pal = frame.palette as Uint8Array;
    return 3 * index + 2 < pal.length ? [pal[3 * index] as number, pal[3 * index + 1] as number, pal[3 * index + 2] as number] : [0, 0, 0];
  };
  const fullScreen = frame.left === 0 && frame.top === 0 && frame.width >= width && frame.height >= height;
  if (fullScreen && (frame.transparentIndex === undefined || channels !== 4)) return true; // nothing to fill
  const fill = colour(frame.transparentIndex ?? 0);
  const right = frame.left + frame.width;
  const bottom = frame.top + frame.height;
  for (let y = 0; y < height; y++) {
    const outsideRow = y < frame.top || y >= bottom;
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * channels;
      const outside = outsideRow || x < frame.left || x >= right;
      // libnsgif writes alpha 0 exactly where the transparent index is (and off the frame).
      const transparent = channels === 4 && frame.transparentIndex !== undefined && data[i + 3] === 0;
      if (outside || transparent) {
        data[i] = fill[0];
        data[i + 1] = fill[1];
        data[i + 2] = fill[2];
      }
    }
  }
  return true;
}

/**
 * Antialiased bicubic resampling of uint8 images, as Pillow (libImaging/Resample.c) and PyTorch's
 * uint8 `_upsample_bicubic2d_aa` (a port of Pillow-SIMD, what torchvision's `resize(..., BICUBIC,
 * antialias=True)` runs on CPU) compute it.
 *
 * Shared by both, and kept here on purpose:
 *  - the filter is the cubic convolution kernel with a = −0.5, its support (2) widened by the
 *    downscale factor, so downscaling averages over all covered pixels (no prefiltering or mipmaps);
 *  - weights are computed in double, normalized per output pixel, then turned into fixed point
 *    rounded half away from zero;
 *  - two separable passes, horizontal first, each rounding (+half) and clamping to uint8 before the next.
 * They differ in the fixed point: Pillow uses 22 fractional bits; PyTorch stores int16 weights and
 * picks, per pass, the most fractional bits (≤ 22) for which round(max weight · 2^(bits+1)) < 2^15.
 * That changes about 0.3 % of the output bytes by one level; "torch" is the transformers 5 reference.
 *
 * Only the output window that the center crop keeps is computed: every output pixel depends on its own
 * weights alone (and, for torch, the pass's precision, computed from all outputs), so the cropped
 * values equal a full resize followed by the crop.
 */

import { defaultWasmResampler } from "./resample-wasm.ts";

export type Resampler = "torch" | "pil";

const PIL_PRECISION_BITS = 22;
const SUPPORT = 2; // bicubic

// The two libraries write the same polynomial differently; kept literally so the doubles round alike.
function bicubicPil(x: number): number {
  const a = -0.5;
  if (x < 0) x = -x;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}
function bicubicTorch(x: number): number {
  const A = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

export interface Coeffs {
  /** First source index used by each output index (of the window). */
  start: Int32Array;
  /** Number of taps of each output index. */
  count: Int32Array;
  /** ksize fixed-point weights per output index. */
  weights: Int32Array;
  ksize: number;
  /** Fractional bits of the weights. */
  precision: number;
}

/**
 * Fixed-point weights for resizing inSize → outSize, for the output indices [from, from + n):
 * Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`, or PyTorch's
 * `_compute_index_ranges_int16_weights` (whose precision depends on the largest weight of all outputs).
 */
export function precomputeCoeffs(inSize: number, outSize: number, from: number, n: number, resampler: Resampler = "torch"): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const filter = resampler === "pil" ? bicubicPil : bicubicTorch;
  const ss = 1 / filterscale;
  // Torch needs the largest weight over every output index to pick its precision, so compute all
  // when it is the torch flavour; Pillow's weights are independent per index.
  const lo = resampler === "pil" ? from : 0;
  const hi = resampler === "pil" ? from + n : outSize;
  const all = new Float64Array((hi - lo) * ksize);
  const allStart = new Int32Array(hi - lo);
  const allCount = new Int32Array(hi - lo);
  let wtMax = 0;
  for (let xx = lo; xx < hi; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize; // torch clamps this rare precision overshoot; Pillow cannot reach it
    if (xmax < 0) xmax = 0;
    const base = (xx - lo) * ksize;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter((x + xmin - center + 0.5) * ss);
      all[base + x] = w;
      ww += w;
    }
    if (ww !== 0) {
      for (let x = 0; x < xmax; x++) {
        const w = (all[base + x] as number) / ww;
        all[base + x] = w;
        if (w > wtMax) wtMax = w;
      }
    }
    allStart[xx - lo] = xmin;
    allCount[xx - lo] = xmax;
  }
  let precision = PIL_PRECISION_BITS;
  if (resampler === "torch") {
    for (precision = 0; precision < 22; precision++) {
      if (Math.trunc(0.5 + wtMax * 2 ** (precision + 1)) >= 1 << 15) break;
    }
  }
  const one = 2 ** precision;
  const start = new Int32Array(n);
  const count = new Int32Array(n);
  const weights = new Int32Array(n * ksize);
  for (let i = 0; i < n; i++) {
    const j = from + i - lo;
    start[i] = allStart[j] as number;
    count[i] = allCount[j] as number;
    for (let x = 0; x < ksize; x++) {
      const v = (all[j * ksize + x] as number) * one;
      weights[i * ksize + x] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
    }
  }
  return { start, count, weights, ksize, precision };
}

export interface ResizeCropOptions {
  /** Source pixels, interleaved, `srcChannels` bytes per pixel. */
  src: Uint8Array;
  width: number;
  height: number;
  srcChannels: number;
  /** Channels to resample: 1 (first channel only, e.g. gray) or 3 (first three: RGB, alpha ignored). */
  channels: 1 | 3;
  outWidth: number;
  outHeight: number;
  /** The window of the resized image to produce. */
  cropLeft: number;
  cropTop: number;
  cropWidth: number;
  cropHeight: number;
  /** Fixed-point flavour (default "torch", the reference's). */
  resampler?: Resampler;
}

/**
 * What bicubicResizeCrop computes, before either backend runs it: the weights of both passes and the
 * source rows the horizontal pass must produce. `horiz`/`vert` are undefined when that axis keeps its size.
 */
export interface ResizeCropPlan {
  src: Uint8Array;
  width: number;
  srcChannels: number;
  channels: 1 | 3;
  resampler: Resampler;
  /** The crop window: its left column (output coordinates), width and height. */
  cropLeft: number;
  cropWidth: number;
  cropHeight: number;
  /** Source rows [rowFirst, rowFirst + rows) feed the vertical pass (or are the crop's rows). */
  rowFirst: number;
  rows: number;
  horiz: Coeffs | undefined;
  vert: Coeffs | undefined;
}

/** The weights and source rows of a resize + crop (see bicubicResizeCrop); throws nothing. */
export function planResizeCrop(o: ResizeCropOptions): ResizeCropPlan {
  const { width, height, outWidth, outHeight, cropLeft, cropTop, cropWidth: cw, cropHeight: chh } = o;
  const resampler = o.resampler ?? "torch";
  // Vertical weights first: they tell which source rows the horizontal pass must produce.
  const vert = outHeight !== height ? precomputeCoeffs(height, outHeight, cropTop, chh, resampler) : undefined;
  let rowFirst = cropTop;
  let rowLast = cropTop + chh;
  if (vert) {
    rowFirst = vert.start[0] as number;
    rowLast = (vert.start[chh - 1] as number) + (vert.count[chh - 1] as number);
  }
  const horiz = outWidth !== width ? precomputeCoeffs(width, outWidth, cropLeft, cw, resampler) : undefined;
  return {
    src: o.src,
    width,
    srcChannels: o.srcChannels,
    channels: o.channels,
    resampler,
    cropLeft,
    cropWidth: cw,
    cropHeight: chh,
    rowFirst,
    rows: rowLast - rowFirst,
    horiz,
    vert,
  };
}

/**
 * Bicubic antialiased resize to outWidth×outHeight followed by a crop, returning the crop as interleaved
 * uint8 with `channels` channels (cropHeight × cropWidth × channels bytes). Runs the WebAssembly SIMD
 * kernels (resample-wasm.ts, bit-exact with the JavaScript) where the runtime validates them, else
 * bicubicResizeCropJs. Throws nothing for valid options.
 */
export function bicubicResizeCrop(o: ResizeCropOptions): Uint8Array {
  const plan = planResizeCrop(o);
  return defaultWasmResampler()?.run(plan) ?? runResizeCropJs(plan);
}

/** bicubicResizeCrop in JavaScript only: the reference of the WebAssembly kernels and their fallback. */
export function bicubicResizeCropJs(o: ResizeCropOptions): Uint8Array {
  return runResizeCropJs(planResizeCrop(o));
}

/** Copies the crop's columns of source rows [rowFirst, rowFirst + rows) into dst (channels bytes per pixel, tight). */
export function copyCropColumns(p: ResizeCropPlan, dst: Uint8Array | Uint8ClampedArray, dstOffset = 0): void {
  const { src, width, srcChannels: sc, channels: ch, cropLeft, cropWidth: cw, rowFirst } = p;
  for (let y = 0; y < p.rows; y++) {
    let s = ((y + rowFirst) * width + cropLeft) * sc;
    let t = dstOffset + y * cw * ch;
    for (let xx = 0; xx < cw; xx++, s += sc) {
      for (let c = 0; c < ch; c++) dst[t++] = src[s + c] as number;
    }
  }
}

function runResizeCropJs(p: ResizeCropPlan): Uint8Array {
  const { src, width, srcChannels: sc, channels: ch, cropWidth: cw, rowFirst, rows } = p;
  // Horizontal pass: rows [rowFirst, rowLast) × crop columns → tmp (ch channels, tight).
  // Uint8ClampedArray does the clamp to 0..255 of the shifted sums (they are integers, so no rounding).
  const tmp = new Uint8ClampedArray(rows * cw * ch);
  if (p.horiz) {
    if (ch === 3) horizontal3(src, width, sc, rowFirst, rows, cw, p.horiz, tmp);
    else horizontal1(src, width, sc, rowFirst, rows, cw, p.horiz, tmp);
  } else {
    copyCropColumns(p, tmp);
  }
  if (!p.vert) return new Uint8Array(tmp.buffer);
  return vertical(tmp, cw * ch, p.cropHeight, rowFirst, p.vert);
}

// Vertical pass over tmp (row indices shifted by rowFirst, as Pillow shifts bounds_vert).
function vertical(tmp: Uint8ClampedArray, stride: number, chh: number, rowFirst: number, vert: Coeffs): Uint8Array {
  const out = new Uint8ClampedArray(chh * stride);
  const { start, count, weights, ksize, precision } = vert;
  const half = 2 ** (precision - 1);
  for (let yy = 0; yy < chh; yy++) {
    const base = ((start[yy] as number) - rowFirst) * stride;
    const n = count[yy] as number;
    const kb = yy * ksize;
    const ob = yy * stride;
    // Four output bytes at a time in registers, walking down the column of source rows; the sums are
    // exact int32 (|sum| < 2^31 for both precisions), so the order does not change the result.
    let i = 0;
    for (; i + 4 <= stride; i += 4) {
      let s0 = half;
      let s1 = half;
      let s2 = half;
      let s3 = half;
      let p = base + i;
      for (let y = 0; y < n; y++, p += stride) {
        const w = weights[kb + y] as number;
        s0 = (s0 + Math.imul(tmp[p] as number, w)) | 0;
        s1 = (s1 + Math.imul(tmp[p + 1] as number, w)) | 0;
        s2 = (s2 + Math.imul(tmp[p + 2] as number, w)) | 0;
        s3 = (s3 + Math.imul(tmp[p + 3] as number, w)) | 0;
      }
      out[ob + i] = s0 >> precision;
      out[ob + i + 1] = s1 >> precision;
      out[ob + i + 2] = s2 >> precision;
      out[ob + i + 3] = s3 >> precision;
    }
    for (; i < stride; i++) {
      let s0 = half;
      let p = base + i;
      for (let y = 0; y < n; y++, p += stride) s0 = (s0 + Math.imul(tmp[p] as number, weights[kb + y] as number)) | 0;
      out[ob + i] = s0 >> precision;
    }
  }
  return new Uint8Array(out.buffer);
}

// Kept as separate small functions so V8 compiles each loop for one channel layout. Sums stay int32:
// 255 · Σ|w| < 2^31 for 22-bit Pillow weights and far below for torch's int16 weights.
function horizontal3(
  src: Uint8Array,
  width: number,
  sc: number,
  rowFirst: number,
  rows: number,
  cw: number,
  co: Coeffs,
  tmp: Uint8ClampedArray,
): void {
  const { start, count, weights, ksize, precision } = co;
  const half = 2 ** (precision - 1);
  const rowStride = width * sc;
  const outStride = cw * 3;
  let y = 0;
  // Two rows at a time: they share every weight, and six accumulators keep V8's registers busy.
  for (; y + 2 <= rows; y += 2) {
    const rowBase = (y + rowFirst) * rowStride;
    for (let xx = 0; xx < cw; xx++) {
      const n = count[xx] as number;
      const kb = xx * ksize;
      let p = rowBase + (start[xx] as number) * sc;
      let a0 = half;
      let a1 = half;
      let a2 = half;
      let b0 = half;
      let b1 = half;
      let b2 = half;
      for (let x = 0; x < n; x++, p += sc) {
        const w = weights[kb + x] as number;
        const q = p + rowStride;
        a0 = (a0 + Math.imul(src[p] as number, w)) | 0;
        a1 = (a1 + Math.imul(src[p + 1] as number, w)) | 0;
        a2 = (a2 + Math.imul(src[p + 2] as number, w)) | 0;
        b0 = (b0 + Math.imul(src[q] as number, w)) | 0;
        b1 = (b1 + Math.imul(src[q + 1] as number, w)) | 0;
        b2 = (b2 + Math.imul(src[q + 2] as number, w)) | 0;
      }
      const t = y * outStride + xx * 3;
      tmp[t] = a0 >> precision;
      tmp[t + 1] = a1 >> precision;
      tmp[t + 2] = a2 >> precision;
      tmp[t + outStride] = b0 >> precision;
      tmp[t + outStride + 1] = b1 >> precision;
      tmp[t + outStride + 2] = b2 >> precision;
    }
  }
  for (; y < rows; y++) {
    const rowBase = (y + rowFirst) * rowStride;
    let t = y * outStride;
    for (let xx = 0; xx < cw; xx++) {
      const n = count[xx] as number;
      const kb = xx * ksize;
      let p = rowBase + (start[xx] as number) * sc;
      let s0 = half;
      let s1 = half;
      let s2 = half;
      for (let x = 0; x < n; x++, p += sc) {
        const w = weights[kb + x] as number;
        s0 = (s0 + Math.imul(src[p] as number, w)) | 0;
        s1 = (s1 + Math.imul(src[p + 1] as number, w)) | 0;
        s2 = (s2 + Math.imul(src[p + 2] as number, w)) | 0;
      }
      tmp[t++] = s0 >> precision;
      tmp[t++] = s1 >> precision;
      tmp[t++] = s2 >> precision;
    }
  }
}

function horizontal1(
  src: Uint8Array,
  width: number,
  sc: number,
  rowFirst: number,
  rows: number,
  cw: number,
  co: Coeffs,
  tmp: Uint8ClampedArray,
): void {
  const { start, count, weights, ksize, precision } = co;
  const half = 2 ** (precision - 1);
  let t = 0;
  for (let y = 0; y < rows; y++) {
    const rowBase = (y + rowFirst) * width * sc;
    for (let xx = 0; xx < cw; xx++) {
      const n = count[xx] as number;
      const kb = xx * ksize;
      let p = rowBase + (start[xx] as number) * sc;
      let s0 = half;
      for (let x = 0; x < n; x++, p += sc) s0 = (s0 + Math.imul(src[p] as number, weights[kb + x] as number)) | 0;
      tmp[t++] = s0 >> precision;
    }
  }
}

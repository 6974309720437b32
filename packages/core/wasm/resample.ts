// AssemblyScript source of pickrank's WebAssembly SIMD resample kernels: the two passes of
// bicubicResizeCrop (packages/core/src/preprocess/resample.ts), bit-exact with its JavaScript.
// Built by `pnpm -C packages/core build:wasm` into src/preprocess/resample-wasm-bytes.ts; the caller
// (resample-wasm.ts) lays out every buffer in the imported memory and passes byte offsets.
//
// All sums are exact int32 (as in the JavaScript), so the order of the additions does not matter.
// "torch" weights fit int16: pairs of taps go through i32x4.dot_i16x8_s with the packed pair
// (w0 & 0xffff | w1 << 16). "pil" weights have 22 fractional bits: one tap at a time with i32x4.mul.
// Tap counts are padded to even with zero weights; the caller pads every buffer so that the extra
// loads stay inside memory. Stores of 16 (vertical) bytes may spill past a row: rows are written in
// increasing order, so the next row overwrites the spill, and the last row's spill lands in padding.

/** First free byte of memory: the caller's buffers start here. */
export function heapBase(): usize {
  return __heap_base;
}

// i16 lanes [p0.c0, p1.c0, p0.c1, p1.c1, p0.c2, p1.c2, 0, 0] of two pixels (sc bytes each) at byte 0.
function pairMask3(sc: i32): v128 {
  let m = i8x16(0, -1, 0, -1, 1, -1, 0, -1, 2, -1, 0, -1, -1, -1, -1, -1);
  m = i8x16.replace_lane(m, 2, <i8>sc);
  m = i8x16.replace_lane(m, 6, <i8>(sc + 1));
  return i8x16.replace_lane(m, 10, <i8>(sc + 2));
}

// i16 lanes [a0, a1, b0, b1, 0 …]: channel 0 of two pixels of row a (bytes 0..7) and of row b (bytes 8..15).
function pairMask1(sc: i32): v128 {
  let m = i8x16(0, -1, 0, -1, 8, -1, 0, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  m = i8x16.replace_lane(m, 2, <i8>sc);
  return i8x16.replace_lane(m, 6, <i8>(8 + sc));
}

// (acc + half) >> precision, clamped to 0..255 (saturating narrows: i32 → i16 → u8), in bytes 0..15.
@inline
function finish(a: v128, b: v128, c: v128, d: v128, half: v128, precision: i32): v128 {
  const ab = i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(a, half), precision), i32x4.shr_s(i32x4.add(b, half), precision));
  const cd = i16x8.narrow_i32x4_s(i32x4.shr_s(i32x4.add(c, half), precision), i32x4.shr_s(i32x4.add(d, half), precision));
  return i8x16.narrow_i16x8_u(ab, cd);
}

@inline
function store3(t: usize, bytes: u32): void {
  store<u16>(t, <u16>bytes);
  store<u8>(t, <u8>(bytes >> 16), 2);
}

/**
 * Horizontal pass, 3 channels, torch weights: rows × cw pixels into tmp (3 bytes per pixel, tight).
 * off[x]: byte offset in a source row of output x's first tap; pairs[x]: its tap pairs; w: kpairs packed
 * pairs per output. Two rows at a time share the weights.
 */
export function h3Torch(
  src: usize, rowStride: i32, sc: i32, rows: i32, cw: i32,
  off: usize, pairs: usize, w: usize, kpairs: i32, precision: i32, tmp: usize,
): void {
  const mask = pairMask3(sc);
  const half = i32x4.splat(1 << (precision - 1));
  const zero = i32x4.splat(0);
  const outStride = cw * 3;
  const step = sc * 2;
  let y = 0;
  for (; y < rows; y += 2) {
    const two = y + 1 < rows;
    const rowA = src + <usize>(y * rowStride);
    const rowB = two ? rowA + <usize>rowStride : rowA;
    let t = tmp + <usize>(y * outStride);
    for (let x = 0; x < cw; x++, t += 3) {
      const o = <usize>load<u32>(off + (<usize>x << 2));
      const n = load<i32>(pairs + (<usize>x << 2));
      let wp = w + (<usize>(x * kpairs) << 2);
      let pa = rowA + o;
      let pb = rowB + o;
      let a = zero;
      let b = zero;
      for (let j = 0; j < n; j++, wp += 4, pa += step, pb += step) {
        const ww = i32x4.splat(load<i32>(wp));
        a = i32x4.add(a, i32x4.dot_i16x8_s(i8x16.swizzle(v128.load64_zero(pa), mask), ww));
        b = i32x4.add(b, i32x4.dot_i16x8_s(i8x16.swizzle(v128.load64_zero(pb), mask), ww));
      }
      const r = finish(a, b, zero, zero, half, precision);
      store3(t, i32x4.extract_lane(r, 0));
      if (two) store3(t + <usize>outStride, i32x4.extract_lane(r, 1));
    }
  }
}

/** Horizontal pass, 1 channel (channel 0 of sc), torch weights: as h3Torch, one byte per output pixel. */
export function h1Torch(
  src: usize, rowStride: i32, sc: i32, rows: i32, cw: i32,
  off: usize, pairs: usize, w: usize, kpairs: i32, precision: i32, tmp: usize,
): void {
  const mask = pairMask1(sc);
  const half = i32x4.splat(1 << (precision - 1));
  const zero = i32x4.splat(0);
  const step = sc * 2;
  for (let y = 0; y < rows; y += 2) {
    const two = y + 1 < rows;
    const rowA = src + <usize>(y * rowStride);
    const rowB = two ? rowA + <usize>rowStride : rowA;
    let t = tmp + <usize>(y * cw);
    for (let x = 0; x < cw; x++, t++) {
      const o = <usize>load<u32>(off + (<usize>x << 2));
      const n = load<i32>(pairs + (<usize>x << 2));
      let wp = w + (<usize>(x * kpairs) << 2);
      let pa = rowA + o;
      let pb = rowB + o;
      let a = zero;
      for (let j = 0; j < n; j++, wp += 4, pa += step, pb += step) {
        const v = i64x2.replace_lane(v128.load64_zero(pa), 1, load<i64>(pb));
        a = i32x4.add(a, i32x4.dot_i16x8_s(i8x16.swizzle(v, mask), i32x4.splat(load<i32>(wp))));
      }
      const r = i32x4.extract_lane(finish(a, zero, zero, zero, half, precision), 0);
      store<u8>(t, <u8>r);
      if (two) store<u8>(t + <usize>cw, <u8>(r >> 8));
    }
  }
}

/**
 * Vertical pass, torch weights: out row yy = Σ over its tap pairs of two tmp rows (starting at byte
 * tmp + off[yy]) times the packed pair, 16 bytes at a time (bytes of the two rows interleaved, widened
 * to i16, dot with the pair).
 */
export function vTorch(
  tmp: usize, stride: i32, chh: i32, off: usize, pairs: usize, w: usize, kpairs: i32, precision: i32, out: usize,
): void {
  const half = i32x4.splat(1 << (precision - 1));
  const zero = i32x4.splat(0);
  const pairStride = <usize>stride << 1;
  for (let yy = 0; yy < chh; yy++) {
    const base = tmp + <usize>load<u32>(off + (<usize>yy << 2));
    const n = load<i32>(pairs + (<usize>yy << 2));
    const wrow = w + (<usize>(yy * kpairs) << 2);
    const orow = out + <usize>(yy * stride);
    for (let i = 0; i < stride; i += 16) {
      let a0 = zero;
      let a1 = zero;
      let a2 = zero;
      let a3 = zero;
      let p = base + <usize>i;
      let wp = wrow;
      for (let j = 0; j < n; j++, wp += 4, p += pairStride) {
        const ww = i32x4.splat(load<i32>(wp));
        const ra = v128.load(p);
        const rb = v128.load(p + <usize>stride);
        const lo = i8x16.shuffle(ra, rb, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const hi = i8x16.shuffle(ra, rb, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        a0 = i32x4.add(a0, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(lo), ww));
        a1 = i32x4.add(a1, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(lo), ww));
        a2 = i32x4.add(a2, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(hi), ww));
        a3 = i32x4.add(a3, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(hi), ww));
      }
      v128.store(orow + <usize>i, finish(a0, a1, a2, a3, half, precision));
    }
  }
}

// i32 lanes [c0, c1, c2, 0] of one pixel at byte 0.
const MASK_PIXEL3: v128 = i8x16(0, -1, -1, -1, 1, -1, -1, -1, 2, -1, -1, -1, -1, -1, -1, -1);

/**
 * Horizontal pass, "pil" weights (22 fractional bits, int32): one tap at a time, i32x4.mul of the
 * widened pixel by the splatted weight. ch 3: lanes [c0, c1, c2, 0] of one pixel; ch 1: lane 0 only.
 * cnt[x]: taps of output x; w: ksize int32 weights per output.
 */
export function hPil(
  src: usize, rowStride: i32, sc: i32, ch: i32, rows: i32, cw: i32,
  off: usize, cnt: usize, w: usize, ksize: i32, precision: i32, tmp: usize,
): void {
  const half = i32x4.splat(1 << (precision - 1));
  const zero = i32x4.splat(0);
  const outStride = cw * ch;
  for (let y = 0; y < rows; y++) {
    const row = src + <usize>(y * rowStride);
    let t = tmp + <usize>(y * outStride);
    for (let x = 0; x < cw; x++, t += <usize>ch) {
      const n = load<i32>(cnt + (<usize>x << 2));
      let wp = w + (<usize>(x * ksize) << 2);
      let p = row + <usize>load<u32>(off + (<usize>x << 2));
      let a = zero;
      for (let j = 0; j < n; j++, wp += 4, p += <usize>sc) {
        a = i32x4.add(a, i32x4.mul(i8x16.swizzle(v128.load32_zero(p), MASK_PIXEL3), i32x4.splat(load<i32>(wp))));
      }
      const r = i32x4.extract_lane(finish(a, zero, zero, zero, half, precision), 0);
      if (ch === 3) store3(t, r);
      else store<u8>(t, <u8>r);
    }
  }
}

/** Vertical pass, "pil" weights: 16 bytes at a time, one tmp row per tap (widened to i32, i32x4.mul). */
export function vPil(
  tmp: usize, stride: i32, chh: i32, off: usize, cnt: usize, w: usize, ksize: i32, precision: i32, out: usize,
): void {
  const half = i32x4.splat(1 << (precision - 1));
  const zero = i32x4.splat(0);
  for (let yy = 0; yy < chh; yy++) {
    const base = tmp + <usize>load<u32>(off + (<usize>yy << 2));
    const n = load<i32>(cnt + (<usize>yy << 2));
    const wrow = w + (<usize>(yy * ksize) << 2);
    const orow = out + <usize>(yy * stride);
    for (let i = 0; i < stride; i += 16) {
      let a0 = zero;
      let a1 = zero;
      let a2 = zero;
      let a3 = zero;
      let p = base + <usize>i;
      let wp = wrow;
      for (let j = 0; j < n; j++, wp += 4, p += <usize>stride) {
        const ww = i32x4.splat(load<i32>(wp));
        const r = v128.load(p);
        const lo = i16x8.extend_low_i8x16_u(r);
        const hi = i16x8.extend_high_i8x16_u(r);
        a0 = i32x4.add(a0, i32x4.mul(i32x4.extend_low_i16x8_u(lo), ww));
        a1 = i32x4.add(a1, i32x4.mul(i32x4.extend_high_i16x8_u(lo), ww));
        a2 = i32x4.add(a2, i32x4.mul(i32x4.extend_low_i16x8_u(hi), ww));
        a3 = i32x4.add(a3, i32x4.mul(i32x4.extend_high_i16x8_u(hi), ww));
      }
      v128.store(orow + <usize>i, finish(a0, a1, a2, a3, half, precision));
    }
  }
}

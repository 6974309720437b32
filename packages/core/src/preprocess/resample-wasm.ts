/**
 * The WebAssembly SIMD backend of bicubicResizeCrop: the kernels of wasm/resample.ts (AssemblyScript,
 * compiled into resample-wasm-bytes.ts), bit-exact with the JavaScript passes of resample.ts, which
 * stay the reference and the fallback.
 *
 * "torch" weights (int16) run through i32x4.dot_i16x8_s on pairs of taps, "pil" weights (22 fractional
 * bits) through i32x4.mul one tap at a time. Whether WebAssembly SIMD runs here is decided once per
 * thread (`WebAssembly.validate` of the binary); PICKRANK_RESAMPLE=js forces the JavaScript passes.
 *
 * Memory: one instance per thread whose memory grows as an image needs, up to `keepBytes` (64 MiB by
 * default); an image that needs more runs on a fresh instance dropped afterwards, so one huge image
 * does not pin its memory in every worker. Where that memory cannot be had (or would pass 2 GiB), the
 * image runs through the JavaScript passes instead.
 */
import type { Coeffs, ResizeCropPlan } from "./resample.ts";
import { copyCropColumns } from "./resample.ts";
import { RESAMPLE_WASM_BASE64 } from "./resample-wasm-bytes.ts";

/** A byte offset in an instance's memory. */
type Ptr = number;
/** The exports of wasm/resample.ts (arguments as documented there: byte offsets, sizes, precision). */
type Kernel = (...args: number[]) => void;
interface Kernels {
  heapBase(): Ptr;
  h3Torch: Kernel;
  h1Torch: Kernel;
  vTorch: Kernel;
  hPil: Kernel;
  vPil: Kernel;
}
interface Instance {
  memory: WebAssembly.Memory;
  k: Kernels;
}

const PAGE = 65536;
/** Memory an instance keeps between images (bytes); larger images run on a fresh instance. */
export const WASM_KEEP_BYTES = 64 * 1024 * 1024;
// The kernels' offsets are int32 products: 2 GiB keeps every one positive (the pixel cap needs < 1 GiB).
const WASM_MAX_BYTES = 2 ** 31 - PAGE;
const PAD = 64; // bytes after each buffer: padded taps and 16-byte stores stay inside memory

/**
 * The compiled kernels, or undefined where this runtime does not validate WebAssembly SIMD or
 * PICKRANK_RESAMPLE=js is set. Decided once per thread.
 */
export function resampleWasmModule(): WebAssembly.Module | undefined {
  if (compiled === undefined) {
    const bytes = Buffer.from(RESAMPLE_WASM_BASE64, "base64");
    const wanted = process.env.PICKRANK_RESAMPLE !== "js";
    compiled = wanted && typeof WebAssembly === "object" && WebAssembly.validate(bytes) ? new WebAssembly.Module(bytes) : null;
  }
  return compiled ?? undefined;
}
let compiled: WebAssembly.Module | null | undefined;

/** Byte offsets of one image's buffers in an instance's memory. */
interface Layout {
  hOff: Ptr;
  hN: Ptr;
  hW: Ptr;
  vOff: Ptr;
  vN: Ptr;
  vW: Ptr;
  src: Ptr;
  srcBytes: number;
  tmp: Ptr;
  out: Ptr;
  end: number;
}

// Arithmetic, not `& ~15`: layouts of huge images pass 2^31, where JavaScript's bitwise operators wrap.
const align16 = (n: number): number => Math.ceil(n / 16) * 16;

/** Taps stored per output index: int16 pairs packed in one int32 (torch) or one int32 per tap (pil). */
function slots(co: Coeffs | undefined, pil: boolean): number {
  if (!co) return 0;
  return pil ? co.ksize : (co.ksize + 1) >> 1;
}

function layout(p: ResizeCropPlan, base: Ptr): Layout {
  const pil = p.resampler === "pil";
  const cw = p.cropWidth;
  const chh = p.cropHeight;
  const stride = cw * p.channels;
  let at = align16(base);
  const take = (bytes: number): Ptr => {
    const ptr = at;
    at = align16(at + bytes + PAD);
    return ptr;
  };
  const hOff = take(cw * 4);
  const hN = take(cw * 4);
  const hW = take(cw * slots(p.horiz, pil) * 4);
  const vOff = take(chh * 4);
  const vN = take(chh * 4);
  const vW = take(chh * slots(p.vert, pil) * 4);
  const srcBytes = p.horiz ? p.rows * p.width * p.srcChannels : 0;
  const src = take(srcBytes);
  const tmp = take((p.rows + 1) * stride);
  const out = take(p.vert ? chh * stride : 0);
  return { hOff, hN, hW, vOff, vN, vW, src, srcBytes, tmp, out, end: at };
}

/** Writes one pass's offsets (byte offset of the first tap, times `unit`), tap counts and weights. */
function writeCoeffs(mem: ArrayBuffer, co: Coeffs, n: number, pil: boolean, at: [Ptr, Ptr, Ptr], unit: number, shift: number): boolean {
  const { start, count, weights, ksize } = co;
  const off = new Uint32Array(mem, at[0], n);
  const cnt = new Int32Array(mem, at[1], n);
  const kp = slots(co, pil);
  const w = new Int32Array(mem, at[2], n * kp);
  for (let i = 0; i < n; i++) {
    off[i] = ((start[i] as number) - shift) * unit;
    const c = count[i] as number;
    cnt[i] = pil ? c : (c + 1) >> 1;
  }
  if (pil) {
    w.set(weights.subarray(0, n * ksize));
    return true;
  }
  for (let i = 0; i < n; i++) {
    const kb = i * ksize;
    for (let j = 0; j < kp; j++) {
      const w0 = weights[kb + 2 * j] as number;
      const w1 = 2 * j + 1 < ksize ? (weights[kb + 2 * j + 1] as number) : 0;
      if (w0 < -32768 || w0 > 32767 || w1 < -32768 || w1 > 32767) return false; // not int16: not torch's
      w[i * kp + j] = (w0 & 0xffff) | (w1 << 16);
    }
  }
  return true;
}

/**
 * Runs ResizeCropPlans on WebAssembly SIMD instances of one compiled module (one object per thread:
 * see defaultWasmResampler). Not reentrant; the kernels run synchronously.
 */
export class WasmResampler {
  /** Images run by the kernels, and fresh instances made for images over keepBytes (for tests). */
  readonly stats = { runs: 0, freshInstances: 0 };
  private kept: Instance | undefined;

  /** `keepBytes`: the most memory the kept instance grows to (bytes); larger images get a fresh instance. */
  constructor(
    private readonly module: WebAssembly.Module,
    readonly keepBytes: number = WASM_KEEP_BYTES,
  ) {}

  /**
   * The crop (cropHeight × cropWidth × channels bytes, a copy) of the plan, bit-exact with the JavaScript
   * passes; undefined where the kernels do not apply (nothing to resample, precision < 1, weights that are not
   * the flavour's, memory that cannot be had) and the caller runs the JavaScript passes. Throws nothing.
   */
  run(p: ResizeCropPlan): Uint8Array | undefined {
    if (!p.horiz && !p.vert) return undefined;
    if ((p.horiz?.precision ?? 1) < 1 || (p.vert?.precision ?? 1) < 1) return undefined;
    const inst = this.instanceFor(p);
    if (!inst) return undefined;
    const l = layout(p, inst.k.heapBase());
    const pil = p.resampler === "pil";
    const stride = p.cropWidth * p.channels;
    const mem = inst.memory.buffer;
    if (p.horiz && !writeCoeffs(mem, p.horiz, p.cropWidth, pil, [l.hOff, l.hN, l.hW], p.srcChannels, 0)) return undefined;
    if (p.vert && !writeCoeffs(mem, p.vert, p.cropHeight, pil, [l.vOff, l.vN, l.vW], stride, p.rowFirst)) return undefined;
    const mem8 = new Uint8Array(mem);
    if (p.horiz) {
      const from = p.rowFirst * p.width * p.srcChannels;
      // The JavaScript passes read (with weight 0, or for channels > srcChannels) up to 8 bytes past the rows
      // they use: copy those where the image has them, zeros past its end (what JS's undefined · w gives).
      const real = Math.min(l.srcBytes + 8, p.src.length - from);
      mem8.set(p.src.subarray(from, from + real), l.src);
      mem8.fill(0, l.src + real, l.src + l.srcBytes + PAD);
      this.horizontal(inst.k, p, l, pil);
    } else {
      copyCropColumns(p, mem8, l.tmp);
    }
    let result = l.tmp;
    if (p.vert) {
      const v = pil ? inst.k.vPil : inst.k.vTorch;
      v(l.tmp, stride, p.cropHeight, l.vOff, l.vN, l.vW, slots(p.vert, pil), p.vert.precision, l.out);
      result = l.out;
    }
    this.stats.runs++;
    return mem8.slice(result, result + p.cropHeight * stride);
  }

  private horizontal(k: Kernels, p: ResizeCropPlan, l: Layout, pil: boolean): void {
    const co = p.horiz as Coeffs;
    const rowStride = p.width * p.srcChannels;
    const kp = slots(co, pil);
    if (pil) {
      k.hPil(l.src, rowStride, p.srcChannels, p.channels, p.rows, p.cropWidth, l.hOff, l.hN, l.hW, kp, co.precision, l.tmp);
    } else {
      const h = p.channels === 3 ? k.h3Torch : k.h1Torch;
      h(l.src, rowStride, p.srcChannels, p.rows, p.cropWidth, l.hOff, l.hN, l.hW, kp, co.precision, l.tmp);
    }
  }

  /** The kept instance grown to fit the plan, a fresh one past keepBytes, or undefined when memory cannot be had. */
  private instanceFor(p: ResizeCropPlan): Instance | undefined {
    const need = layout(p, 0).end + PAGE; // heapBase (1 KiB for this binary, checked by a test) below one page
    if (need > WASM_MAX_BYTES) return undefined;
    const pages = Math.ceil(need / PAGE);
    try {
      if (need > this.keepBytes) {
        this.stats.freshInstances++;
        return this.instantiate(pages);
      }
      if (!this.kept) this.kept = this.instantiate(pages);
      const have = this.kept.memory.buffer.byteLength / PAGE;
      if (have < pages) this.kept.memory.grow(pages - have);
      return this.kept;
    } catch (e) {
      if (e instanceof RangeError) return undefined; // memory refused: the JavaScript passes need less
      throw e;
    }
  }

  private instantiate(pages: number): Instance {
    const memory = new WebAssembly.Memory({ initial: pages });
    const inst = new WebAssembly.Instance(this.module, { env: { memory } });
    return { memory, k: inst.exports as unknown as Kernels };
  }
}

let defaultResampler: WasmResampler | null | undefined;

/**
 * This thread's WasmResampler (made on first use), or undefined where WebAssembly SIMD is not available
 * (resampleWasmModule). bicubicResizeCrop runs through it.
 */
export function defaultWasmResampler(): WasmResampler | undefined {
  if (defaultResampler === undefined) {
    const m = resampleWasmModule();
    defaultResampler = m ? new WasmResampler(m) : null;
  }
  return defaultResampler ?? undefined;
}

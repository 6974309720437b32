import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, vi } from "vitest";
import { compileResampleWasm, OUTPUT, renderBytesModule } from "../scripts/build-wasm.mjs";
import {
  bicubicResizeCrop,
  bicubicResizeCropJs,
  planResizeCrop,
  type ResizeCropOptions,
  type Resampler,
} from "../src/preprocess/resample.ts";
import { RESAMPLE_WASM_BASE64 } from "../src/preprocess/resample-wasm-bytes.ts";
import { resampleWasmModule, WasmResampler } from "../src/preprocess/resample-wasm.ts";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** A seeded generator (LCG): the random cases are the same on every run. */
function rng(seed: number): { f: () => number; int: (lo: number, hi: number) => number } {
  let s = seed >>> 0;
  const f = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
  return { f, int: (lo, hi) => lo + Math.floor(f() * (hi - lo + 1)) };
}

/** Random bytes with runs of 0 and 255, so the clamp to 0..255 is reached on both sides. */
function pixels(r: ReturnType<typeof rng>, n: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = r.f() < 0.3 ? (r.f() < 0.5 ? 0 : 255) : r.int(0, 255);
  return a;
}

function randomCase(r: ReturnType<typeof rng>, maxIn: number, maxOut: number, resampler: Resampler): ResizeCropOptions {
  const width = r.int(1, maxIn);
  const height = r.int(1, maxIn);
  const srcChannels = r.int(1, 4);
  const channels: 1 | 3 = srcChannels >= 3 && r.f() < 0.7 ? 3 : 1;
  const outWidth = r.f() < 0.15 ? width : r.int(1, maxOut); // one axis unchanged now and then
  const outHeight = r.f() < 0.15 ? height : r.int(1, maxOut);
  // Crops: the whole output, a window touching an edge, or anywhere.
  const mode = r.int(0, 2);
  const cropWidth = mode === 0 ? outWidth : r.int(1, outWidth);
  const cropHeight = mode === 0 ? outHeight : r.int(1, outHeight);
  const edge = mode === 1 && r.f() < 0.5;
  const cropLeft = edge ? outWidth - cropWidth : r.int(0, outWidth - cropWidth);
  const cropTop = edge ? 0 : r.int(0, outHeight - cropHeight);
  const src = pixels(r, width * height * srcChannels);
  return { src, width, height, srcChannels, channels, outWidth, outHeight, cropLeft, cropTop, cropWidth, cropHeight, resampler };
}

function expectBitExact(wasm: WasmResampler, o: ResizeCropOptions): void {
  const plan = planResizeCrop(o);
  const got = wasm.run(plan);
  const want = bicubicResizeCropJs(o);
  const label = JSON.stringify({ ...o, src: undefined });
  if (!plan.horiz && !plan.vert) {
    expect(got, label).toBeUndefined(); // nothing to resample: a copy, done in JavaScript
    return;
  }
  expect(got, label).toBeInstanceOf(Uint8Array);
  expect(got?.length, label).toBe(o.cropWidth * o.cropHeight * o.channels);
  if (!Buffer.from(got as Uint8Array).equals(Buffer.from(want))) {
    const i = (got as Uint8Array).findIndex((v, j) => v !== want[j]);
    expect({ index: i, wasm: got?.[i], js: want[i] }, label).toEqual({ index: -1, wasm: undefined, js: undefined });
  }
}

function kernels(): WasmResampler {
  const m = resampleWasmModule();
  expect(m, "WebAssembly SIMD validates on Node 20").toBeDefined();
  return new WasmResampler(m as WebAssembly.Module);
}

describe("resample WebAssembly SIMD kernels: bit-exact with the JavaScript passes", () => {
  for (const resampler of ["torch", "pil"] as const) {
    it(`${resampler}: 300 seeded random cases, sizes 1..300 (up and down, crops, channels 1/3, srcChannels 1..4)`, () => {
      const wasm = kernels();
      const r = rng(resampler === "torch" ? 11 : 12);
      for (let i = 0; i < 300; i++) expectBitExact(wasm, randomCase(r, i < 200 ? 40 : 300, i < 200 ? 60 : 300, resampler));
      expect(wasm.stats.runs).toBeGreaterThan(250);
    });

    it(`${resampler}: large images (2000×1500 → 224 crop, 640×480 ← 97×53 upscale, 1024² with one axis kept)`, () => {
      const wasm = kernels();
      const r = rng(21);
      const cases: [number, number, number, number, number, 1 | 3][] = [
        [2000, 1500, 298, 224, 3, 3],
        [97, 53, 640, 480, 4, 3],
        [1024, 1024, 1024, 224, 4, 3],
        [1024, 1024, 224, 1024, 2, 1],
        [1500, 2000, 224, 298, 1, 1],
      ];
      for (const [width, height, outWidth, outHeight, srcChannels, channels] of cases) {
        const src = pixels(r, width * height * srcChannels);
        const cropWidth = Math.min(outWidth, 224);
        const cropHeight = Math.min(outHeight, 224);
        const cropLeft = (outWidth - cropWidth) >> 1;
        const cropTop = (outHeight - cropHeight) >> 1;
        const o = { src, width, height, srcChannels, channels, outWidth, outHeight, cropLeft, cropTop, cropWidth, cropHeight };
        expectBitExact(wasm, { ...o, resampler });
      }
    });
  }

  it("bicubicResizeCrop runs the kernels by default and equals bicubicResizeCropJs", () => {
    const r = rng(5);
    for (let i = 0; i < 20; i++) {
      const o = randomCase(r, 80, 80, "torch");
      expect(Buffer.from(bicubicResizeCrop(o)).equals(Buffer.from(bicubicResizeCropJs(o)))).toBe(true);
    }
  });

  it("the kept instance's memory grows as images need, and later (smaller) images stay exact", () => {
    const wasm = kernels();
    const r = rng(9);
    const sizes = [16, 400, 1200, 30, 800];
    for (const s of sizes) {
      const src = pixels(r, s * s * 3);
      const o = { src, width: s, height: s, srcChannels: 3, channels: 3 as const, outWidth: 100, outHeight: 100 };
      expectBitExact(wasm, { ...o, cropLeft: 0, cropTop: 0, cropWidth: 100, cropHeight: 100, resampler: "torch" });
    }
    expect(wasm.stats).toEqual({ runs: sizes.length, freshInstances: 0 });
  });

  it("an image needing more than keepBytes runs on a fresh instance (dropped), exactly", () => {
    const wasm = new WasmResampler(resampleWasmModule() as WebAssembly.Module, 256 * 1024);
    const r = rng(10);
    const small = { src: pixels(r, 50 * 50 * 3), width: 50, height: 50 };
    const big = { src: pixels(r, 600 * 500 * 3), width: 600, height: 500 }; // 900 kB of pixels
    for (const im of [small, big, small, big]) {
      const o = { ...im, srcChannels: 3, channels: 3 as const, outWidth: 64, outHeight: 64 };
      expectBitExact(wasm, { ...o, cropLeft: 0, cropTop: 0, cropWidth: 64, cropHeight: 64, resampler: "torch" });
    }
    expect(wasm.stats).toEqual({ runs: 4, freshInstances: 2 });
  });

  it("a plan past 2 GiB of kernel memory is left to the JavaScript passes (run → undefined), allocating nothing", () => {
    // 70000 × 70000 × 1 bytes of source rows: the layout passes 2^32 (a wrapped `& ~15` once made it small). The pixels are never read.
    const o = { src: new Uint8Array(1), width: 70000, height: 70000, srcChannels: 1, channels: 1 as const };
    const plan = planResizeCrop({ ...o, outWidth: 224, outHeight: 224, cropLeft: 0, cropTop: 0, cropWidth: 224, cropHeight: 224 });
    const wasm = kernels();
    expect(wasm.run(plan)).toBeUndefined();
    expect(wasm.stats).toEqual({ runs: 0, freshInstances: 0 });
  });
});

describe("resample WebAssembly binary and backend choice", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    vi.resetModules();
  });

  it("the committed resample-wasm-bytes.ts is exactly what wasm/resample.ts compiles to (pnpm -C packages/core build:wasm)", async () => {
    const bytes = await compileResampleWasm();
    expect(Buffer.from(RESAMPLE_WASM_BASE64, "base64").equals(bytes)).toBe(true);
    expect(await readFile(path.join(pkg, OUTPUT), "utf8")).toBe(renderBytesModule(bytes));
  }, 60_000);

  it("the binary imports only env.memory and its buffers start in the first page (heapBase < 64 KiB)", () => {
    const m = resampleWasmModule() as WebAssembly.Module;
    expect(WebAssembly.Module.imports(m)).toEqual([{ module: "env", name: "memory", kind: "memory" }]);
    const inst = new WebAssembly.Instance(m, { env: { memory: new WebAssembly.Memory({ initial: 1 }) } });
    expect((inst.exports.heapBase as () => number)()).toBeLessThan(65536);
  });

  it("PICKRANK_RESAMPLE=js selects the JavaScript passes", async () => {
    vi.stubEnv("PICKRANK_RESAMPLE", "js");
    vi.resetModules();
    const m = await import("../src/preprocess/resample-wasm.ts");
    expect(m.resampleWasmModule()).toBeUndefined();
    expect(m.defaultWasmResampler()).toBeUndefined();
  });

  it("where WebAssembly SIMD does not validate, the JavaScript passes run (same bytes)", async () => {
    vi.spyOn(WebAssembly, "validate").mockReturnValue(false);
    vi.resetModules();
    const wasmMod = await import("../src/preprocess/resample-wasm.ts");
    const resample = await import("../src/preprocess/resample.ts");
    expect(wasmMod.defaultWasmResampler()).toBeUndefined();
    const o = randomCase(rng(3), 60, 60, "torch");
    expect(Buffer.from(resample.bicubicResizeCrop(o)).equals(Buffer.from(bicubicResizeCropJs(o)))).toBe(true);
  });
});

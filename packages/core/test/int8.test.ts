/**
 * int8 graphs (dtype "int8": the encoders' MatMul weights quantized per output channel, run by ORT's
 * DynamicQuantizeMatMul on the CPU): the quantizer, the graph's operators, and fidelity against the fp32
 * graphs of the same tiny CLIP on the reference images, held to the int8 figures of tolerances.ts (a
 * table of its own: int8 is not held to the fp32 bars). Also Kendall's τ, which the fidelity report uses.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertModel } from "../src/convert/convert.ts";
import { quantizePerChannel } from "../src/convert/quantize.ts";
import { readManifest } from "../src/model/manifest.ts";
import { compareEmbeddings, kendallTau, verifyModel, type FidelityReport } from "../src/model/verify.ts";
import { MS_DOMAIN } from "../src/onnx/graph-builder.ts";
import { openSession } from "../src/runtime/ort.ts";
import { referenceDir, tinyClipDir } from "../../../test/helpers/paths.ts";
import { loadReference, type Reference } from "./convert-helpers.ts";
import { countOpTypes } from "./onnx-decode.ts";
import { INT8_FIDELITY } from "./tolerances.ts";

let ref: Reference;
let tmp: string;

beforeAll(async () => {
  ref = await loadReference();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-int8-"));
  for (const dtype of ["fp32", "int8"] as const) await convertModel(tinyClipDir, { out: path.join(tmp, dtype), dtype });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("quantizePerChannel", () => {
  it("scales each output channel by max|w| / 127, rounds ties to even, transposes to [in, out]", () => {
    // torch layout [out = 2, in = 3]
    const w = Float32Array.from([1.27, -0.635, 0.005, 0, 0, 0]);
    const q = quantizePerChannel(w, 2, 3);
    expect(Array.from(q.scales)).toEqual([Math.fround(1.27 / 127), 1]);
    // row 0: 127, -63.5 → -64 (ties to even), 0.5 → 0 (ties to even); row 1 all zero
    expect(Array.from(q.valuesT)).toEqual([127, 0, -64, 0, 0, 0]);
  });

  it("reconstructs every weight within half a step of its channel's scale", () => {
    const rows = 7;
    const cols = 33;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % rows)));
    const q = quantizePerChannel(w, rows, cols);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const back = q.valuesT[c * rows + r]! * q.scales[r]!;
        expect(Math.abs(back - w[r * cols + c]!)).toBeLessThanOrEqual(q.scales[r]! / 2 + 1e-7);
      }
  });
});

describe("kendallTau", () => {
  it("is 1 for the same order, -1 for the reverse, and counts discordant pairs", () => {
    expect(kendallTau([1, 2, 3, 4], [10, 20, 30, 40])).toBe(1);
    expect(kendallTau([1, 2, 3, 4], [4, 3, 2, 1])).toBe(-1);
    // one swapped adjacent pair of 4 items: (5 - 1) / 6
    expect(kendallTau([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(4 / 6, 12);
    // τ-b with a tie in one list: concordant 2, discordant 0, ties 1 → 2 / sqrt(3 · 2)
    expect(kendallTau([1, 2, 3], [1, 1, 2])).toBeCloseTo(2 / Math.sqrt(6), 12);
  });

  it("BAD CALL - kendallTau with lists of different lengths: BAD_INPUT", () => {
    expect(() => kendallTau([1, 2], [1])).toThrow(PickrankError);
  });
});

describe("int8 graphs (tiny CLIP, ORT CPU)", () => {
  it("writes dtype int8, the standard variant only, every encoder linear as DynamicQuantizeMatMul", async () => {
    const m = await readManifest(path.join(tmp, "int8"));
    expect(m.dtype).toBe("int8");
    expect(m.variants).toBeUndefined();
    for (const tower of ["text", "vision"]) {
      const ops = await countOpTypes(path.join(tmp, "int8", `${tower}.onnx`));
      // 2 layers × (q, k, v, out, fc1, fc2); float MatMuls left: 2 per layer in attention + the projection.
      expect(ops[`${MS_DOMAIN}:DynamicQuantizeMatMul`], tower).toBe(12);
      expect(ops.MatMul, tower).toBe(5);
    }
  });

  it("ONNX Runtime's optimized CPU graph keeps the int8 kernels (no fallback to float MatMul)", async () => {
    const out = path.join(tmp, "optimized-int8.onnx");
    const s = await openSession(path.join(tmp, "int8", "vision.onnx"), "cpu", { optimizedModelFile: out });
    await s.release();
    const ops = await countOpTypes(out);
    console.log("ORT CPU optimized int8 vision graph op types:", JSON.stringify(ops));
    expect(ops[`${MS_DOMAIN}:DynamicQuantizeMatMul`]).toBe(12);
  });

  it("holds the int8 fidelity figures of tolerances.ts against the fp32 graphs on the reference images", async () => {
    const r: FidelityReport = await verifyModel({
      model: path.join(tmp, "int8"),
      reference: path.join(tmp, "fp32"),
      prompts: ref.prompts,
      images: ref.images.map((f) => path.join(referenceDir, f)),
    });
    console.log("int8 vs fp32 (tiny CLIP, cpu):", JSON.stringify(r));
    expect([r.prompts, r.images]).toEqual([ref.prompts.length, ref.images.length]);
    expect(r.imageCosine.min).toBeGreaterThan(INT8_FIDELITY.tiny.imageCosineMin.bound);
    expect(r.textCosine.min).toBeGreaterThan(INT8_FIDELITY.tiny.textCosineMin.bound);
    expect(r.scoreError.relMaxAbs).toBeLessThan(INT8_FIDELITY.tiny.scoreRelMaxAbs.bound);
    expect(r.kendallTau.min).toBeGreaterThanOrEqual(INT8_FIDELITY.tiny.kendallTauMin.bound);
  });

  it("compareEmbeddings of a model with itself: cosines 1, no score error, τ = 1, same best image", () => {
    const e = (seed: number) => {
      const v = Float32Array.from({ length: 4 }, (_, i) => Math.cos(seed + i));
      const n = Math.hypot(...v);
      return v.map((x) => x / n);
    };
    const set = { text: [e(1), e(2)], images: [e(3), e(4), e(5)], logitScale: Math.log(100) };
    const r = compareEmbeddings(set, set);
    expect(r.textCosine.min).toBeCloseTo(1, 6);
    expect(r.imageCosine.min).toBeCloseTo(1, 6);
    expect(r.scoreError.maxAbs).toBe(0);
    expect(r.kendallTau).toEqual({ min: 1, mean: 1 });
    expect(r.sameBest).toBe(2);
  });

  it("BAD CALL - convertModel with dtype int8 and the fused variant: BAD_INPUT", async () => {
    const err = await convertModel(tinyClipDir, { out: path.join(tmp, "bad"), dtype: "int8", variants: ["fused"] }).catch(
      (e: unknown) => e,
    );
    expect((err as PickrankError).code).toBe("BAD_INPUT");
    expect((err as PickrankError).message).toMatch(/int8/);
  });
});

/**
 * The fused graph variant (com.microsoft MultiHeadAttention, SkipLayerNormalization, BiasGelu) on the
 * CPU provider: parity with the transformers reference under the same bounds as the standard graphs,
 * the operators in our file and in the graph ONNX Runtime actually runs (optimizedModelFilePath), the
 * weights written once when the graphs use external data, and which variant each device gets.
 * WebGPU's half is in webgpu.test.ts.
 */
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { convertModel } from "../src/convert/convert.ts";
import { graphsForDevice, readManifest } from "../src/model/manifest.ts";
import { GraphBuilder, MS_DOMAIN } from "../src/onnx/graph-builder.ts";
import { openSession } from "../src/runtime/ort.ts";
import { Scorer } from "../src/scorer.ts";
import { tinyClipDir, referenceDir } from "../../../test/helpers/paths.ts";
import { loadReference, referenceErrors, runTiny, type Reference } from "./convert-helpers.ts";
import { countOpTypes, opsetImports } from "./onnx-decode.ts";
import { parityBound } from "./tolerances.ts";

let ref: Reference;
let tmp: string;
const FUSED = { text: "text.fused.onnx", vision: "vision.fused.onnx" };
const NO_MHA = { text: "text.fused-no-mha.onnx", vision: "vision.fused-no-mha.onnx" };
/** The tiny CLIP has 2 text and 2 vision layers. */
const LAYERS = 2;

beforeAll(async () => {
  ref = await loadReference();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-variants-"));
  for (const dtype of ["fp32", "fp16"] as const) await convertModel(tinyClipDir, { out: path.join(tmp, dtype), dtype });
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("GraphBuilder.residualNorm and opset imports", () => {
  it("fused: one SkipLayerNormalization with outputs 0 (normed) and 3 (sum), 1 and 2 skipped; com.microsoft imported", () => {
    const g = new GraphBuilder("t");
    const r = g.residualNorm("a", "x", { gamma: "g", beta: "b", bias: "bias", epsilon: 1e-5, fused: true, name: "ln" });
    expect(g.nodes).toHaveLength(1);
    const n = g.nodes[0]!;
    expect([n.opType, n.domain, n.inputs]).toEqual(["SkipLayerNormalization", MS_DOMAIN, ["a", "x", "g", "b", "bias"]]);
    expect(n.outputs).toEqual([r.normed, "", "", r.sum]);
    expect(g.opsetImports(17)).toEqual([
      { domain: "", version: 17 },
      { domain: MS_DOMAIN, version: 1 },
    ]);
  });

  it("unfused: Add (bias), Add (residual), LayerNormalization; only ai.onnx imported", () => {
    const g = new GraphBuilder("t");
    const r = g.residualNorm("a", "x", { gamma: "g", beta: "b", bias: "bias", epsilon: 1e-5, fused: false, name: "ln" });
    expect(g.nodes.map((n) => n.opType)).toEqual(["Add", "Add", "LayerNormalization"]);
    expect(g.nodes[2]!.inputs).toEqual([r.sum, "g", "b"]);
    expect(g.opsetImports(17)).toEqual([{ domain: "", version: 17 }]);
  });
});

describe("fused graph variant (tiny CLIP, ORT CPU)", () => {
  it("the manifest records both variants; auto gives WebGPU and CUDA the fused graphs and the CPU the standard ones", async () => {
    const m = await readManifest(path.join(tmp, "fp32"));
    expect(m.graphs).toEqual({ text: "text.onnx", vision: "vision.onnx" });
    expect(m.variants).toEqual({ fused: FUSED, "fused-no-mha": NO_MHA });
    expect(graphsForDevice(m, "cuda")).toEqual({ variant: "fused", ...FUSED });
    // WebGPU's MultiHeadAttention is wrong from 32 tokens on (webgpu.test.ts): auto gives it the rest fused.
    expect(graphsForDevice(m, "webgpu")).toEqual({ variant: "fused-no-mha", ...NO_MHA });
    expect(graphsForDevice(m, "cpu")).toEqual({ variant: "standard", text: "text.onnx", vision: "vision.onnx" });
    expect(graphsForDevice(m, "cpu", "fused").variant).toBe("fused");
    expect(graphsForDevice(m, "webgpu", "standard").variant).toBe("standard");
    expect(graphsForDevice(m, "webgpu", "fused").variant).toBe("fused");
  });

  it("fp32 fused graphs match every output within the fp32 bounds of tolerances.ts", async () => {
    const e = referenceErrors(await runTiny(path.join(tmp, "fp32"), ref, "cpu", FUSED), ref);
    console.log("fused fp32 (cpu) max relative error per output:", JSON.stringify(e));
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("fp32 fused-no-mha graphs match every output within the fp32 bounds of tolerances.ts", async () => {
    const e = referenceErrors(await runTiny(path.join(tmp, "fp32"), ref, "cpu", NO_MHA), ref);
    console.log("fused-no-mha fp32 (cpu) max relative error per output:", JSON.stringify(e));
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("fp16 fused graphs stay within the fp16 bounds of tolerances.ts", async () => {
    const e = referenceErrors(await runTiny(path.join(tmp, "fp16"), ref, "cpu", FUSED), ref);
    console.log("fused fp16 (cpu) max relative error per output:", JSON.stringify(e));
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp16", k));
  });

  it("our files: the fused graphs hold the com.microsoft kernels and import com.microsoft; the standard ones neither", async () => {
    for (const tower of ["text", "vision"] as const) {
      const fused = await countOpTypes(path.join(tmp, "fp32", FUSED[tower]));
      expect(fused[`${MS_DOMAIN}:MultiHeadAttention`], tower).toBe(LAYERS);
      expect(fused[`${MS_DOMAIN}:BiasGelu`], tower).toBe(LAYERS);
      // Each layer's two residual sums, less the last one (pooling follows it, not a norm of the sequence).
      expect(fused[`${MS_DOMAIN}:SkipLayerNormalization`], tower).toBe(2 * LAYERS - 1);
      expect(fused.Softmax ?? 0, tower).toBe(0);
      expect(fused.Erf ?? 0, tower).toBe(0);
      expect(await opsetImports(path.join(tmp, "fp32", FUSED[tower]))).toEqual({ "": 17, [MS_DOMAIN]: 1 });
      const noMha = await countOpTypes(path.join(tmp, "fp32", NO_MHA[tower]));
      expect(noMha[`${MS_DOMAIN}:MultiHeadAttention`] ?? 0, tower).toBe(0);
      expect([noMha[`${MS_DOMAIN}:SkipLayerNormalization`], noMha[`${MS_DOMAIN}:BiasGelu`], noMha.Softmax], tower).toEqual([
        2 * LAYERS - 1,
        LAYERS,
        LAYERS,
      ]);
      const standard = await countOpTypes(path.join(tmp, "fp32", `${tower}.onnx`));
      expect(
        Object.keys(standard).filter((k) => k.includes(":")),
        tower,
      ).toEqual([]);
      expect(standard.Softmax, tower).toBe(LAYERS);
      expect(await opsetImports(path.join(tmp, "fp32", `${tower}.onnx`))).toEqual({ "": 17 });
    }
  });

  it("ONNX Runtime's optimized CPU graph: the fused vision graph keeps one attention kernel per layer, the standard one none", async () => {
    const counts: Record<string, Record<string, number>> = {};
    for (const [variant, file] of [
      ["standard", "vision.onnx"],
      ["fused", FUSED.vision],
    ] as const) {
      const out = path.join(tmp, `optimized-${variant}.onnx`);
      const s = await openSession(path.join(tmp, "fp32", file), "cpu", { optimizedModelFile: out });
      await s.release();
      counts[variant] = await countOpTypes(out);
    }
    console.log("ORT CPU optimized vision graph op types:", JSON.stringify(counts));
    const mha = `${MS_DOMAIN}:MultiHeadAttention`;
    expect(counts.fused![mha]).toBe(LAYERS);
    expect(counts.fused!.Softmax ?? 0).toBe(0);
    // ORT's CPU attention fusion does not match CLIP's per-head Reshape/Transpose pattern: attention stays unfused.
    expect(counts.standard![mha] ?? 0).toBe(0);
    expect(counts.standard![`${MS_DOMAIN}:Attention`] ?? 0).toBe(0);
    expect(counts.standard!.Softmax).toBe(LAYERS);
    const total = (c: Record<string, number>) => Object.values(c).reduce((a, b) => a + b, 0);
    expect(total(counts.fused!)).toBeLessThan(total(counts.standard!));
  });

  it("with external data the fused graphs reference the standard graphs' data files: weights on disk once, same outputs", async () => {
    const out = path.join(tmp, "ext");
    await convertModel(tinyClipDir, { out, externalDataThreshold: 0 });
    const files = (await readdir(out)).sort();
    // text.fused.onnx.data: the causal mask, 4-D for MultiHeadAttention ([1, 1, 77, 77]) where the standard graph's is [77, 77]
    // (fused-no-mha shares the standard one).
    expect(files).toEqual([
      "pickrank.json",
      "text.fused-no-mha.onnx",
      "text.fused.onnx",
      "text.fused.onnx.data",
      "text.onnx",
      "text.onnx.data",
      "tokenizer",
      "vision.fused-no-mha.onnx",
      "vision.fused.onnx",
      "vision.onnx",
      "vision.onnx.data",
    ]);
    const size = async (f: string) => (files.includes(f) ? (await stat(path.join(out, f))).size : 0);
    for (const tower of ["text", "vision"] as const) {
      const data = await size(`${tower}.onnx.data`);
      // The fused files hold their graph and the small tensors only they have (the [q|k|v] biases, the 4-D mask).
      for (const files of [FUSED, NO_MHA]) {
        const own = (await size(files[tower])) + (await size(`${files[tower]}.data`));
        console.log(`${files[tower]}: standard data ${data} bytes, graph + own data ${own} bytes`);
        expect(own, tower).toBeLessThan(data / 5);
      }
    }
    for (const files of [FUSED, NO_MHA]) {
      const e = referenceErrors(await runTiny(out, ref, "cpu", files), ref);
      for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp32", k));
    }
  });

  it("the Scorer runs the standard graphs on the CPU under auto, the fused ones when asked, with the same scores", async () => {
    const images = ref.images.map((f) => path.join(referenceDir, f));
    const scores: Record<string, number[]> = {};
    for (const graph of ["auto", "fused"] as const) {
      const s = await Scorer.create({ model: path.join(tmp, "fp32"), device: "cpu", graph, preprocessWorkers: 0 });
      try {
        expect(s.graphVariant).toBe(graph === "auto" ? "standard" : "fused");
        scores[graph] = (await s.score(ref.prompts[0]!, images)).map((r) => r.score);
      } finally {
        await s.dispose();
      }
    }
    const ref0 = ref.logits_per_image.map((row) => row[0]!);
    const maxRef = Math.max(...ref0.map(Math.abs));
    for (const v of ["auto", "fused"]) {
      const err = Math.max(...scores[v]!.map((x, i) => Math.abs(x - ref0[i]!))) / maxRef;
      expect(err, v).toBeLessThan(parityBound("fp32", "logits_per_image"));
    }
  });

  it("BAD CALL - Scorer.create with graph 'fused' on a model converted without it: BAD_INPUT naming --graph", async () => {
    const out = path.join(tmp, "standard-only");
    await convertModel(tinyClipDir, { out });
    // Converting again without the fused variant removes the earlier conversion's fused files.
    await convertModel(tinyClipDir, { out, variants: ["standard"] });
    expect((await readdir(out)).sort()).toEqual(["pickrank.json", "text.onnx", "tokenizer", "vision.onnx"]);
    expect((await readManifest(out)).variants).toBeUndefined();
    const err = await Scorer.create({ model: out, device: "cpu", graph: "fused" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PickrankError);
    expect((err as PickrankError).code).toBe("BAD_INPUT");
    expect((err as PickrankError).message).toMatch(/--graph fused/);
  });
});

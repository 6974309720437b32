/**
 * Converter acceptance: the tiny CLIP of the fixtures converted by our own graph writer must reproduce
 * the transformers reference (model.json) when run by ONNX Runtime on the CPU.
 *
 * Error metric everywhere: max |ours − ref| / max |ref| over the whole output (relative to the output's
 * scale, so components near zero do not blow up the ratio).
 */
import { readFile, mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONVERT_EXTERNAL_DATA_THRESHOLD, convertModel } from "../src/convert/convert.ts";
import { openSession } from "../src/runtime/ort.ts";
import { readManifest } from "../src/model/manifest.ts";
import { tinyClipDir } from "../../../test/helpers/paths.ts";
import {
  bestImagePerPrompt,
  loadReference,
  maxRelErr,
  referenceErrors,
  runTiny,
  scoreAll,
  type Reference,
  type TinyOutputs,
} from "./convert-helpers.ts";
import { parityBound } from "./tolerances.ts";

let ref: Reference;
let tmp: string;
const outputs: Record<string, TinyOutputs> = {};

beforeAll(async () => {
  ref = await loadReference();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-convert-"));
  for (const dtype of ["fp32", "fp16"] as const) {
    const { dir } = await convertModel(tinyClipDir, { out: path.join(tmp, dtype), dtype });
    outputs[dtype] = await runTiny(dir, ref);
  }
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("convertModel parity with the transformers reference (tiny CLIP, ORT CPU)", () => {
  it("fp32 graphs match every output within the fp32 bounds of tolerances.ts", () => {
    const e = referenceErrors(outputs.fp32!, ref);
    console.log("fp32 max relative error per output:", JSON.stringify(e));
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("fp16 graphs stay within the fp16 bounds of tolerances.ts and rank images like the reference", () => {
    const e = referenceErrors(outputs.fp16!, ref);
    console.log("fp16 max relative error per output:", JSON.stringify(e));
    for (const [k, v] of Object.entries(e)) expect(v, k).toBeLessThan(parityBound("fp16", k));
    // Same best image for every prompt as the reference.
    const s = scoreAll(outputs.fp16!, ref.logit_scale);
    expect(bestImagePerPrompt(s.logitsPerImage, ref)).toEqual(bestImagePerPrompt(ref.logits_per_image.flat(), ref));
  });

  it("writes a manifest with the logit scale from the weights, dims, CLIP preprocessing and source hashes", async () => {
    const m = await readManifest(path.join(tmp, "fp32"));
    expect(m.formatVersion).toBe(1);
    expect(m.dtype).toBe("fp32");
    expect(m.logitScale).toBeCloseTo(ref.logit_scale, 6);
    expect(m.dims).toEqual({ projection: 16, textWidth: 32, visionWidth: 32, contextLength: 77, imageSize: 224, patchSize: 14 });
    expect(m.preprocess).toEqual({ size: 224, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711] });
    expect(m.graphs).toEqual({ text: "text.onnx", vision: "vision.onnx" });
    expect(m.tokenizer.dir).toBe("tokenizer");
    const { createHash } = await import("node:crypto");
    for (const name of ["config.json", "model.safetensors"]) {
      const data = await readFile(path.join(tinyClipDir, name));
      expect(m.source.files.find((f) => f.name === name)).toEqual({
        name,
        size: data.byteLength,
        sha256: createHash("sha256").update(data).digest("hex"),
      });
    }
    expect((await readManifest(path.join(tmp, "fp16"))).dtype).toBe("fp16");
  });

  it("declares input_ids/pixel_values and text_embeds/image_embeds with a dynamic batch, fp32 at the edges in fp16 too", async () => {
    for (const dtype of ["fp32", "fp16"] as const) {
      const text = await openSession(path.join(tmp, dtype, "text.onnx"), "cpu");
      const vision = await openSession(path.join(tmp, dtype, "vision.onnx"), "cpu");
      expect(text.inputNames).toEqual(["input_ids"]);
      expect(text.outputNames).toEqual(["text_embeds"]);
      expect(vision.inputNames).toEqual(["pixel_values"]);
      expect(vision.outputNames).toEqual(["image_embeds"]);
      // Batch of one through the same graph (the parity run used batches of 4 and 6).
      const ids = BigInt64Array.from(ref.input_ids[1]!.map(BigInt));
      const r = await text.run({ input_ids: { type: "int64", data: ids, dims: [1, 77] } });
      const out = r.text_embeds!;
      expect(out.type).toBe("float32");
      expect(out.dims).toEqual([1, 16]);
      const err = maxRelErr(out.data as Float32Array, ref.text_embeds_unnormalized[1]!);
      expect(err).toBeLessThan(parityBound(dtype, "text_embeds_unnormalized"));
      await text.release();
      await vision.release();
    }
  });

  it("external data for every graph (threshold 0) gives the same outputs, bit for bit, as inline graphs", async () => {
    const { dir } = await convertModel(tinyClipDir, { out: path.join(tmp, "external"), externalDataThreshold: 0 });
    for (const g of ["text", "vision"]) {
      expect((await stat(path.join(dir, `${g}.onnx.data`))).size, g).toBeGreaterThan(0);
      // The graph file keeps the structure only: smaller than its weights.
      expect((await stat(path.join(dir, `${g}.onnx`))).size, g).toBeLessThan((await stat(path.join(dir, `${g}.onnx.data`))).size);
    }
    const ext = await runTiny(dir, ref);
    expect(ext).toEqual(outputs.fp32);
  });

  it("keeps a small graph in one file by default, and puts PickScore-sized weights in external data", async () => {
    await expect(stat(path.join(tmp, "fp32", "text.onnx.data"))).rejects.toMatchObject({ code: "ENOENT" });
    // PickScore_v1's text graph holds 1.4 GB of weights, its vision graph 2.5 GB; the tiny one ≈1 MB.
    expect(CONVERT_EXTERNAL_DATA_THRESHOLD).toBeLessThan(1.4e9);
    expect(CONVERT_EXTERNAL_DATA_THRESHOLD).toBeGreaterThan((await stat(path.join(tmp, "fp32", "text.onnx"))).size);
  });

  it("copies the tokenizer files into the model folder", async () => {
    const { ClipTokenizer } = await import("../src/tokenizer/clip-tokenizer.ts");
    const tok = await ClipTokenizer.fromDir(path.join(tmp, "fp32", "tokenizer"));
    expect(tok.encode(ref.prompts[0]!)).toEqual(ref.input_ids[0]);
  });
});

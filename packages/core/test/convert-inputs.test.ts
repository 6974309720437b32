/**
 * The converter's other inputs and options: forced external data, fp16 / bf16 safetensors sources,
 * legacy *_config_dict configs, quick_gelu — and the bad inputs, each named for the call it breaks.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isPickrankError, type PickrankError } from "@pickrank/contract";
import { convertModel } from "../src/convert/convert.ts";
import { parseClipConfig } from "../src/convert/clip-config.ts";
import { readManifest } from "../src/model/manifest.ts";
import { float32ToFloat16Array } from "../src/onnx/float16.ts";
import { tinyClipDir } from "../../../test/helpers/paths.ts";
import { loadReference, maxRelErr, readSafetensors, runTiny, writeSafetensors, type RawTensor, type Reference } from "./convert-helpers.ts";
import { parityBound, TOLERANCES } from "./tolerances.ts";

let ref: Reference;
let tmp: string;
let tiny: RawTensor[];
let tinyConfig: Record<string, unknown>;

beforeAll(async () => {
  ref = await loadReference();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-convert-inputs-"));
  tiny = await readSafetensors(path.join(tinyClipDir, "model.safetensors"));
  tinyConfig = JSON.parse(await readFile(path.join(tinyClipDir, "config.json"), "utf8")) as Record<string, unknown>;
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

let n = 0;
/** A fresh HF-style folder with the given config and weights (defaults: the tiny model's). */
async function hfDir(opts: { config?: unknown; tensors?: RawTensor[]; weightsFile?: string } = {}): Promise<string> {
  const dir = path.join(tmp, `hf-${++n}`);
  await mkdir(dir);
  if (opts.config !== null) await writeFile(path.join(dir, "config.json"), JSON.stringify(opts.config ?? tinyConfig));
  if (opts.tensors) await writeSafetensors(path.join(dir, "model.safetensors"), opts.tensors);
  else if (opts.weightsFile) await copyFile(opts.weightsFile, path.join(dir, "model.safetensors"));
  else await symlink(path.join(tinyClipDir, "model.safetensors"), path.join(dir, "model.safetensors"));
  return dir;
}

async function expectBadModel(p: Promise<unknown>, ...fragments: (string | RegExp)[]): Promise<PickrankError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(isPickrankError(e), `expected a PickrankError, got ${String(e)}`).toBe(true);
  const pe = e as PickrankError;
  expect(pe.code).toBe("BAD_MODEL");
  for (const f of fragments) expect(pe.message).toMatch(f);
  return pe;
}

function f32ToBf16(t: RawTensor): RawTensor {
  const f = new Uint32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  const out = new Uint16Array(f.length);
  // Round to nearest even, as torch's .bfloat16() does.
  for (let i = 0; i < f.length; i++) out[i] = (f[i]! + 0x7fff + ((f[i]! >>> 16) & 1)) >>> 16;
  return { ...t, dtype: "BF16", data: new Uint8Array(out.buffer) };
}

function f32ToF16(t: RawTensor): RawTensor {
  const f = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  return { ...t, dtype: "F16", data: new Uint8Array(float32ToFloat16Array(f).buffer) };
}

function textEmbedErrors(o: { text: Float32Array; image: Float32Array }) {
  return {
    text: maxRelErr(o.text, ref.text_embeds_unnormalized.flat()),
    image: maxRelErr(o.image, ref.image_embeds_unnormalized.flat()),
  };
}

describe("convertModel options and sources", () => {
  it("writes external data when forced (externalDataThreshold: 0), and ORT loads it with the same results", async () => {
    const out = path.join(tmp, "external");
    await convertModel(tinyClipDir, { out, externalDataThreshold: 0, variants: ["standard"] });
    const files = (await readdir(out)).sort();
    expect(files).toEqual(["pickrank.json", "text.onnx", "text.onnx.data", "tokenizer", "vision.onnx", "vision.onnx.data"]);
    // The graph files keep only the structure and small constants.
    expect((await stat(path.join(out, "text.onnx"))).size).toBeLessThan(100_000);
    expect((await stat(path.join(out, "text.onnx.data"))).size).toBeGreaterThan(6_000_000);
    const e = textEmbedErrors(await runTiny(out, ref));
    expect(e.text).toBeLessThan(parityBound("fp32", "text_embeds_unnormalized"));
    expect(e.image).toBeLessThan(parityBound("fp32", "image_embeds_unnormalized"));
    // Converting again without external data removes the stale .data files.
    await convertModel(tinyClipDir, { out, variants: ["standard"] });
    expect((await readdir(out)).sort()).toEqual(["pickrank.json", "text.onnx", "tokenizer", "vision.onnx"]);
  });

  it("converts an fp16 safetensors source (to fp32 and to fp16 graphs)", async () => {
    const dir = await hfDir({ tensors: tiny.map((t) => (t.dtype === "F32" ? f32ToF16(t) : t)) });
    const e32 = textEmbedErrors(await runTiny((await convertModel(dir, { out: path.join(tmp, "f16src-fp32") })).dir, ref));
    const e16 = textEmbedErrors(await runTiny((await convertModel(dir, { out: path.join(tmp, "f16src-fp16"), dtype: "fp16" })).dir, ref));
    console.log("fp16 source → fp32 graphs:", JSON.stringify(e32), "→ fp16 graphs:", JSON.stringify(e16));
    // Only the weights were rounded to fp16: errors of fp16 rounding, not of a wrong graph.
    for (const v of [e32.text, e32.image, e16.text, e16.image]) expect(v).toBeLessThan(TOLERANCES.source.fp16.bound);
    // Really read as fp16: the rounding shows, far above what the fp32 weights give (~4e-7).
    expect(e32.text).toBeGreaterThan(100 * parityBound("fp32", "text_embeds_unnormalized"));
  });

  it("converts a bf16 safetensors source", async () => {
    const dir = await hfDir({ tensors: tiny.map((t) => (t.dtype === "F32" ? f32ToBf16(t) : t)) });
    const { dir: out, manifest } = await convertModel(dir, { out: path.join(tmp, "bf16src") });
    const e = textEmbedErrors(await runTiny(out, ref));
    console.log("bf16 source → fp32 graphs:", JSON.stringify(e));
    // bf16's rounding of the weights (tolerances.ts: source.bf16).
    expect(e.text).toBeLessThan(TOLERANCES.source.bf16.bound);
    expect(e.image).toBeLessThan(TOLERANCES.source.bf16.bound);
    expect(e.text).toBeGreaterThan(1e-4); // really read as bf16
    expect(manifest.logitScale).toBeCloseTo(4.6052, 1);
  });

  it("ignores int64 position_ids buffers that older files carry", async () => {
    const ids = new BigInt64Array(77).map((_, i) => BigInt(i));
    const extra: RawTensor[] = [
      { name: "text_model.embeddings.position_ids", dtype: "I64", shape: [1, 77], data: new Uint8Array(ids.buffer) },
      { name: "vision_model.embeddings.position_ids", dtype: "I64", shape: [1, 257], data: new Uint8Array(new BigInt64Array(257).buffer) },
    ];
    const dir = await hfDir({ tensors: [...extra, ...tiny] });
    const e = textEmbedErrors(await runTiny((await convertModel(dir, { out: path.join(tmp, "posids") })).dir, ref));
    expect(e.text).toBeLessThan(parityBound("fp32", "text_embeds_unnormalized"));
    expect(e.image).toBeLessThan(parityBound("fp32", "image_embeds_unnormalized"));
  });

  it("reads legacy text_config_dict / vision_config_dict, which win over text_config / vision_config", async () => {
    const legacy = {
      ...tinyConfig,
      // Beside the dicts, stale sub-configs that would not even validate: the dicts must be used.
      text_config: { hidden_act: "relu", hidden_size: 999 },
      vision_config: null,
      text_config_dict: tinyConfig.text_config,
      vision_config_dict: tinyConfig.vision_config,
    };
    const dir = await hfDir({ config: legacy });
    const e = textEmbedErrors(await runTiny((await convertModel(dir, { out: path.join(tmp, "legacy") })).dir, ref));
    expect(e.text).toBeLessThan(parityBound("fp32", "text_embeds_unnormalized"));
    expect(e.image).toBeLessThan(parityBound("fp32", "image_embeds_unnormalized"));
    // Only the dicts (no text_config at all) works too.
    const { text_config: _t, vision_config: _v, ...onlyDicts } = legacy;
    expect(parseClipConfig(onlyDicts).text.hidden_size).toBe(32);
  });

  it("fills transformers' CLIPConfig defaults for fields a config leaves out", () => {
    const c = parseClipConfig({ model_type: "clip" });
    expect(c.projectionDim).toBe(512);
    expect(c.text).toMatchObject({
      vocab_size: 49408,
      hidden_size: 512,
      num_hidden_layers: 12,
      num_attention_heads: 8,
      hidden_act: "quick_gelu",
      eos_token_id: 49407,
    });
    expect(c.vision).toMatchObject({
      hidden_size: 768,
      patch_size: 32,
      image_size: 224,
      num_attention_heads: 12,
      hidden_act: "quick_gelu",
    });
  });

  it("builds quick_gelu and eos-token pooling variants that ORT runs", async () => {
    const cfg = structuredClone(tinyConfig) as { text_config: Record<string, unknown>; vision_config: Record<string, unknown> };
    cfg.text_config.hidden_act = "quick_gelu";
    cfg.vision_config.hidden_act = "quick_gelu";
    cfg.text_config.eos_token_id = 49407; // first position of 49407 = argmax for CLIP-tokenized ids
    const dir = await hfDir({ config: cfg });
    const o = await runTiny((await convertModel(dir, { out: path.join(tmp, "quick") })).dir, ref);
    expect(o.text.every(Number.isFinite) && o.image.every(Number.isFinite)).toBe(true);
    // A different activation changes the outputs (so the variant really is in the graph) …
    expect(maxRelErr(o.text, ref.text_embeds_unnormalized.flat())).toBeGreaterThan(1e-3);
    // … while eos pooling picks the same token as argmax: with gelu and eos 49407 the reference is matched.
    cfg.text_config.hidden_act = "gelu";
    const dir2 = await hfDir({ config: cfg });
    const o2 = await runTiny((await convertModel(dir2, { out: path.join(tmp, "eos") })).dir, ref);
    expect(maxRelErr(o2.text, ref.text_embeds_unnormalized.flat())).toBeLessThan(parityBound("fp32", "text_embeds_unnormalized"));
  });

  it("copies the HF folder's tokenizer files when it has them, and an explicit tokenizerDir over both", async () => {
    const { defaultTokenizerDir } = await import("../src/tokenizer/clip-tokenizer.ts");
    const dir = await hfDir();
    const vocab = await readFile(path.join(defaultTokenizerDir(), "vocab.json"));
    await writeFile(path.join(dir, "vocab.json"), vocab);
    await writeFile(path.join(dir, "merges.txt"), await readFile(path.join(defaultTokenizerDir(), "merges.txt")));
    await writeFile(path.join(dir, "special_tokens_map.json"), "{}");
    const out = path.join(tmp, "tok-hf");
    await convertModel(dir, { out });
    expect((await readdir(path.join(out, "tokenizer"))).sort()).toEqual(["merges.txt", "special_tokens_map.json", "vocab.json"]);
    const out2 = path.join(tmp, "tok-explicit");
    await convertModel(dir, { out: out2, tokenizerDir: defaultTokenizerDir() });
    expect((await readdir(path.join(out2, "tokenizer"))).sort()).toEqual(["merges.txt", "tokenizer_config.json", "vocab.json"]);
  });

  it("takes mean/std from the HF folder's preprocessor_config.json, and refuses a resize that differs from the crop", async () => {
    const dir = await hfDir();
    const pp = {
      size: { shortest_edge: 224 },
      crop_size: { height: 224, width: 224 },
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.25, 0.25, 0.25],
    };
    await writeFile(path.join(dir, "preprocessor_config.json"), JSON.stringify(pp));
    const { manifest } = await convertModel(dir, { out: path.join(tmp, "pp") });
    expect(manifest.preprocess).toEqual({ size: 224, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
    await writeFile(path.join(dir, "preprocessor_config.json"), JSON.stringify({ ...pp, size: { shortest_edge: 256 } }));
    await expectBadModel(convertModel(dir, { out: path.join(tmp, "pp2") }), /resize to 256 then crop to 224 is not supported/);
  });

  it("keeps the source repo/revision given by the caller, and the hub's file hashes when it passes them", async () => {
    const files = [
      { name: "config.json", size: 1, sha256: "a".repeat(64) },
      { name: "model.safetensors", size: 2, sha256: "b".repeat(64) },
    ];
    const { manifest } = await convertModel(tinyClipDir, {
      out: path.join(tmp, "src"),
      source: { repo: "yuvalkirstain/PickScore_v1", revision: "abc", files },
    });
    expect(manifest.source).toEqual({ repo: "yuvalkirstain/PickScore_v1", revision: "abc", files });
  });

  it("reports progress per graph in bytes, ending complete", async () => {
    const seen: { stage: string; done: number; total: number }[] = [];
    await convertModel(tinyClipDir, { out: path.join(tmp, "progress"), onProgress: (p) => seen.push(p) });
    for (const stage of ["text", "vision"]) {
      const last = seen.filter((p) => p.stage === stage).at(-1)!;
      expect(last.done).toBe(last.total);
      // The bytes are the tower's checkpoint weights (fp32 in, fp32 out) plus the graph's own small
      // constants (the text tower's 77×77 causal mask is the largest: 23 716 bytes).
      const prefix = stage === "text" ? ["text_model.", "text_projection."] : ["vision_model.", "visual_projection."];
      const tower = tiny.filter((t) => prefix.some((p) => t.name.startsWith(p)) && !t.name.endsWith("position_ids"));
      const weights = tower.reduce((a, t) => a + t.data.byteLength, 0);
      expect(last.total - weights, stage).toBeGreaterThanOrEqual(0);
      expect(last.total - weights, stage).toBeLessThan(32 * 1024);
    }
    expect(seen.at(-1)!.stage).toBe("manifest");
  });
});

describe("convertModel bad inputs", () => {
  it("convertModel: missing config.json", async () => {
    await expectBadModel(convertModel(await hfDir({ config: null }), { out: path.join(tmp, "x1") }), /config\.json not found/);
  });

  it("convertModel: missing model folder → NOT_FOUND (a missing input, exit 2), not BAD_MODEL", async () => {
    const missing = path.join(tmp, "nope");
    await expect(convertModel(missing, { out: path.join(tmp, "x2") })).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringMatching(/nope does not exist/),
      details: { path: missing },
    });
  });

  it("convertModel: config.json that is not JSON", async () => {
    const dir = await hfDir();
    await writeFile(path.join(dir, "config.json"), "{ not json");
    await expectBadModel(convertModel(dir, { out: path.join(tmp, "x3") }), /config\.json is not valid JSON/);
  });

  it("convertModel: unsupported hidden_act names it and the supported ones", async () => {
    const cfg = structuredClone(tinyConfig) as { vision_config: Record<string, unknown> };
    cfg.vision_config.hidden_act = "relu";
    await expectBadModel(
      convertModel(await hfDir({ config: cfg }), { out: path.join(tmp, "x4") }),
      /vision_config\.hidden_act is "relu"; supported: "gelu", "quick_gelu"/,
    );
  });

  it("convertModel: config field of the wrong type says where and what was expected", async () => {
    const cfg = structuredClone(tinyConfig) as { text_config: Record<string, unknown> };
    cfg.text_config.num_hidden_layers = "two";
    await expectBadModel(
      convertModel(await hfDir({ config: cfg }), { out: path.join(tmp, "x5") }),
      /text config: num_hidden_layers: .*expected number/i,
    );
  });

  it("convertModel: missing model.safetensors (pytorch_model.bin only)", async () => {
    const dir = path.join(tmp, "binonly");
    await mkdir(dir);
    await writeFile(path.join(dir, "config.json"), JSON.stringify(tinyConfig));
    await writeFile(path.join(dir, "pytorch_model.bin"), "x");
    await expectBadModel(convertModel(dir, { out: path.join(tmp, "x6") }), /no model\.safetensors \(pytorch_model\.bin is not supported\)/);
  });

  it("convertModel: truncated safetensors", async () => {
    const src = await readFile(path.join(tinyClipDir, "model.safetensors"));
    const file = path.join(tmp, "truncated.safetensors");
    await writeFile(file, src.subarray(0, src.byteLength - 1000));
    const out = path.join(tmp, "x7");
    await expectBadModel(
      convertModel(await hfDir({ weightsFile: file }), { out }),
      /visual_projection\.weight ends at data byte \d+ but the file holds only \d+ data bytes .* truncated/,
    );
    // Nothing that looks like a model was left behind.
    await expect(stat(path.join(out, "pickrank.json"))).rejects.toThrow();
  });

  it("convertModel: safetensors header length beyond the file, and a header that is not JSON", async () => {
    const file = path.join(tmp, "badlen.safetensors");
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(1000n);
    await writeFile(file, b);
    await expectBadModel(
      convertModel(await hfDir({ weightsFile: file }), { out: path.join(tmp, "x8") }),
      /header length 1000 does not fit the file \(64 bytes\)/,
    );
    const file2 = path.join(tmp, "badjson.safetensors");
    const h = Buffer.from("{ nope  ");
    const l = Buffer.alloc(8);
    l.writeBigUInt64LE(BigInt(h.length));
    await writeFile(file2, Buffer.concat([l, h]));
    await expectBadModel(
      convertModel(await hfDir({ weightsFile: file2 }), { out: path.join(tmp, "x9") }),
      /header is not valid UTF-8 JSON/,
    );
  });

  it("convertModel: missing tensors are all named, with their expected shapes", async () => {
    const drop = new Set(["text_model.encoder.layers.1.mlp.fc2.weight", "vision_model.pre_layrnorm.bias"]);
    const dir = await hfDir({ tensors: tiny.filter((t) => !drop.has(t.name)) });
    const e = await expectBadModel(
      convertModel(dir, { out: path.join(tmp, "x10") }),
      /missing weight text_model\.encoder\.layers\.1\.mlp\.fc2\.weight \(expected \[32, 64\]\)/,
      /missing weight vision_model\.pre_layrnorm\.bias \(expected \[32\]\)/,
    );
    expect((e.details as { problems: string[] }).problems).toHaveLength(2);
  });

  it("convertModel: shape mismatch says expected vs found", async () => {
    const cfg = structuredClone(tinyConfig) as { text_config: Record<string, unknown> };
    cfg.text_config.intermediate_size = 128;
    await expectBadModel(
      convertModel(await hfDir({ config: cfg }), { out: path.join(tmp, "x11") }),
      /weight text_model\.encoder\.layers\.0\.mlp\.fc1\.weight has shape \[64, 32\]; expected \[128, 32\]/,
    );
  });

  it("convertModel: an output folder that cannot be created (procfs) fails at once, naming it and --out", async () => {
    // Node's recursive mkdir never returns on procfs; the error must come back instead.
    const err = await convertModel(await hfDir({ tensors: tiny }), { out: "/proc/pickrank-convert-test/x" }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "NOT_FOUND", details: { path: "/proc/pickrank-convert-test/x", option: "--out" } });
    expect((err as Error).message).toMatch(/^Could not create the output folder \/proc\/pickrank-convert-test\/x \(--out\)/);
  });

  it("convertModel: a projection with bias is refused as unsupported", async () => {
    const bias: RawTensor = { name: "text_projection.bias", dtype: "F32", shape: [16], data: new Uint8Array(64) };
    await expectBadModel(
      convertModel(await hfDir({ tensors: [...tiny, bias] }), { out: path.join(tmp, "x12") }),
      /text_projection\.bias is present: text projection with bias is not supported/,
    );
  });

  it("convertModel: a weight of an integer dtype", async () => {
    const tensors = tiny.map((t) => (t.name === "text_projection.weight" ? { ...t, dtype: "I32" } : t));
    await expectBadModel(
      convertModel(await hfDir({ tensors }), { out: path.join(tmp, "x13") }),
      /text_projection\.weight has dtype I32; expected F32, F16 or BF16/,
    );
  });

  it("convertModel: dtype fp16 with a weight beyond the fp16 range", async () => {
    const tensors = tiny.map((t) => {
      if (t.name !== "vision_model.encoder.layers.0.mlp.fc1.bias") return t;
      const f = new Float32Array(t.data.slice().buffer);
      f[3] = 1e6;
      return { ...t, data: new Uint8Array(f.buffer) };
    });
    const dir = await hfDir({ tensors });
    await expectBadModel(
      convertModel(dir, { out: path.join(tmp, "x16"), dtype: "fp16" }),
      /weight vision_model\.encoder\.layers\.0\.mlp\.fc1\.bias has a value outside the fp16 range .* at element 3; convert with dtype "fp32"/,
    );
    await convertModel(dir, { out: path.join(tmp, "x17") }); // fp32 holds it
  });

  it("convertModel: bad options are BAD_INPUT", async () => {
    await expect(convertModel(tinyClipDir, { out: path.join(tmp, "x14"), dtype: "int4" as "fp16" })).rejects.toMatchObject({
      code: "BAD_INPUT",
      message: 'Expected "fp32", "fp16" or "int8" for dtype but received "int4" of type string',
    });
    await expect(convertModel(tinyClipDir, { out: "" })).rejects.toMatchObject({ code: "BAD_INPUT" });
    await expect(convertModel(tinyClipDir, { out: path.join(tmp, "x15"), tokenizerDir: tmp })).rejects.toMatchObject({
      code: "BAD_TOKENIZER",
    });
  });
});

describe("readManifest", () => {
  it("readManifest: a folder without pickrank.json names the folder and the file", async () => {
    const dir = path.join(tmp, "empty-model");
    await mkdir(dir);
    await expectBadModel(
      readManifest(dir),
      new RegExp(`${dir.replace(/[/\\.]/g, "\\$&")} is not a converted model folder: pickrank\\.json is missing`),
    );
  });

  it("readManifest: a manifest naming a missing graph", async () => {
    const out = path.join(tmp, "incomplete");
    await convertModel(tinyClipDir, { out });
    await rm(path.join(out, "vision.onnx"));
    await expectBadModel(readManifest(out), /is incomplete: missing vision\.onnx named by pickrank\.json/);
  });

  it("readManifest: an invalid manifest says which field", async () => {
    const out = path.join(tmp, "invalid");
    await convertModel(tinyClipDir, { out });
    const m = JSON.parse(await readFile(path.join(out, "pickrank.json"), "utf8")) as Record<string, unknown>;
    await writeFile(
      path.join(out, "pickrank.json"),
      JSON.stringify({ ...m, dtype: "int4", graphs: { text: "../x.onnx", vision: "vision.onnx" } }),
    );
    await expectBadModel(readManifest(out), /dtype/, /graphs\.text: expected a path relative to the model folder/);
  });
});

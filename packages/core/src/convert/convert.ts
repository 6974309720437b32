/**
 * HF CLIPModel folder (config.json + model.safetensors, fp32/fp16/bf16) → a pickrank model folder:
 * text.onnx, vision.onnx (+ .data when a graph's weights pass the external-data threshold), tokenizer/,
 * pickrank.json. The graphs are written by our own code (./clip-graph.ts, ../onnx/*), and the weights
 * stream from the safetensors file into the graphs tensor by tensor, so converting the 3.9 GB
 * PickScore needs memory for one tensor at a time, not for the model.
 *
 * The manifest is written last and every file goes through a temp name + rename: a folder with a
 * pickrank.json is complete.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFile, readFile, rename, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { invalidParameter, PickrankError } from "@pickrank/contract";
import { type ModelManifest, MANIFEST_FILE, MANIFEST_FORMAT_VERSION, parseManifest } from "../model/manifest.ts";
import { bfloat16ToFloat32Array, float16ToFloat32Array, float32ToFloat16Array } from "../onnx/float16.ts";
import type { GraphBuilder } from "../onnx/graph-builder.ts";
import { writeOnnxModel } from "../onnx/model-writer.ts";
import { DataType, type GraphDef, type ModelDef, type TensorSource } from "../onnx/onnx-types.ts";
import { defaultTokenizerDir } from "../tokenizer/clip-tokenizer.ts";
import { readClipConfig, type ClipConfig } from "./clip-config.ts";
import {
  buildTextGraph,
  buildVisionGraph,
  DEFAULT_GRAPH_OPTIONS,
  GRAPH_VARIANTS,
  type ClipGraphOptions,
  type GraphDtype,
  type GraphVariant,
  type WeightFn,
  type WeightRequest,
} from "./clip-graph.ts";
import { quantizedWeightSource } from "./quantize.ts";
import { SafetensorsFile, type SafetensorsEntry } from "./safetensors.ts";
import { pathExists as exists, fsError, makeDir, writeFileAtomic } from "@pickrank/contract";

export const CONVERTER_NAME = "pickrank-convert";
export const CONVERTER_VERSION = "0.1.0";
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;
export const TEXT_GRAPH_FILE = "text.onnx";
export const VISION_GRAPH_FILE = "vision.onnx";
/** The fused variants' graphs, beside the standard ones (their large weights stored once, in the standard graphs' data files). */
export const FUSED_TEXT_GRAPH_FILE = "text.fused.onnx";
export const FUSED_VISION_GRAPH_FILE = "vision.fused.onnx";
/** The dtypes convertModel writes. */
export const CONVERT_DTYPES: readonly GraphDtype[] = ["fp32", "fp16", "int8"];
const TOKENIZER_DIR = "tokenizer";
/** Files copied into the model's tokenizer folder when present. */
const TOKENIZER_FILES = ["tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"];

/** laion/CLIP-ViT-H-14's preprocessing (PickScore's processor), used when the HF folder has no preprocessor_config.json. */
const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Progress of convertModel: the stage and how far it is (`done` of `total`; bytes while writing weights). */
export interface ConvertProgress {
  /** "text" / "vision" while writing that graph's weights (done/total in bytes), then "tokenizer", "hash", "manifest". */
  stage: string;
  done: number;
  total: number;
}

/**
 * Weights above which the converter writes a graph's initializers to `<graph>.onnx.data` (64 MiB).
 * ONNX Runtime parses an inline graph as one protobuf message, copying every weight out of it, and
 * maps page-aligned external data instead: PickScore's 1.4 GB text graph was ready in 5.2 s inline and
 * 1.2 s external (docs/benchmarks.md, "Start-up"). Small graphs (the test fixtures) stay one file.
 * Models converted before, with an inline text graph, still load.
 */
export const CONVERT_EXTERNAL_DATA_THRESHOLD = 64 * 2 ** 20;

/**
 * Options of convertModel: the output folder, the tokenizer folder, the weight dtype of the graphs
 * (default "fp32"), provenance for the manifest, a progress callback and the external-data threshold (bytes).
 */
export interface ConvertOptions {
  out: string;
  tokenizerDir?: string;
  /** "fp32" (default), "fp16", or "int8" (CPU: encoder MatMul weights int8 per output channel, see clip-graph.ts). */
  dtype?: GraphDtype;
  /**
   * Graph variants to write: "standard" always; "fused" and "fused-no-mha" (com.microsoft kernels for CUDA
   * and WebGPU) by default for fp32 and fp16, never for int8 (whose kernels are the CPU's).
   */
  variants?: GraphVariant[];
  /** Provenance for the manifest; when `files` lists model.safetensors with a sha256 (the hub verified it), hashing is skipped. */
  source?: ModelManifest["source"];
  onProgress?: (p: ConvertProgress) => void;
  /**
   * Bytes of initializers above which a graph's weights go to `<graph>.onnx.data` (default
   * CONVERT_EXTERNAL_DATA_THRESHOLD, 64 MiB: both PickScore graphs; 0 forces it).
   */
  externalDataThreshold?: number;
  /** Graph options (fp16 layer norms); dtype comes from `dtype`, the variant from `variants`. */
  graph?: Partial<Omit<ClipGraphOptions, "dtype" | "variant">>;
}

/** The converted model folder and the manifest written to its pickrank.json. */
export interface ConvertResult {
  dir: string;
  manifest: ModelManifest;
}

type FloatSrc = "F32" | "F16" | "BF16";
const FLOAT_SOURCES: readonly string[] = ["F32", "F16", "BF16"];
/** Elements per read when streaming a tensor that needs no transpose (16 MiB of f32). */
const CHUNK_ELEMS = 4 << 20;
/** Tensors in the checkpoint that the graphs cannot represent: their presence means a different model. */
const UNSUPPORTED_TENSORS: Record<string, string> = {
  "text_projection.bias": "text projection with bias",
  "visual_projection.bias": "visual projection with bias",
  "vision_model.embeddings.patch_embedding.bias": "patch embedding with bias",
};

function badModel(message: string, details?: Record<string, unknown>, cause?: unknown): PickrankError {
  return new PickrankError("BAD_MODEL", message, { ...(details ? { details } : {}), ...(cause ? { cause } : {}) });
}

/** Converts `raw` (a fresh buffer of `src` elements) to the graph's float type. */
function convertFloats(raw: Uint8Array, src: FloatSrc, dst: DataType): Uint8Array {
  if (dst === DataType.FLOAT) {
    if (src === "F32") return raw;
    const u16 = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
    const f = src === "F16" ? float16ToFloat32Array(u16) : bfloat16ToFloat32Array(u16);
    return new Uint8Array(f.buffer);
  }
  if (src === "F16") return raw;
  const f32 =
    src === "F32"
      ? new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4)
      : bfloat16ToFloat32Array(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
  return new Uint8Array(float32ToFloat16Array(f32).buffer);
}

/**
 * [rows, cols] → [cols, rows] on raw elements of 2 or 4 bytes. Tiled, because a plain double loop
 * writes with a stride of `rows` elements and spends its time in cache misses (3× slower on PickScore).
 */
function transpose2d(data: Uint8Array, rows: number, cols: number, elemSize: number): Uint8Array {
  const out = new Uint8Array(data.byteLength);
  const T = elemSize === 4 ? Uint32Array : Uint16Array;
  const src = new T(data.buffer as ArrayBuffer, data.byteOffset, rows * cols);
  const dst = new T(out.buffer, 0, rows * cols);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(r0 + B, rows);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(c0 + B, cols);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[base + c]!;
      }
    }
  }
  return out;
}

/** fp16 tops out at 65504: a weight beyond it would silently become inf. */
function checkFp16Range(name: string, data: Uint8Array, src: FloatSrc): Uint8Array {
  if (src === "F16") return data;
  const h = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
  for (let i = 0; i < h.length; i++) {
    if ((h[i]! & 0x7c00) === 0x7c00) {
      throw badModel(
        `weight ${name} has a value outside the fp16 range (|x| > 65504, or not finite) at element ${i}; convert with dtype "fp32"`,
        {
          tensor: name,
        },
      );
    }
  }
  return data;
}

function weightSource(st: SafetensorsFile, e: SafetensorsEntry, dst: DataType, req: WeightRequest): TensorSource {
  const src = e.dtype as FloatSrc;
  const conv = (raw: Uint8Array) => {
    const out = convertFloats(raw, src, dst);
    return dst === DataType.FLOAT16 ? checkFp16Range(e.name, out, src) : out;
  };
  const srcSize = src === "F32" ? 4 : 2;
  const dstSize = dst === DataType.FLOAT ? 4 : 2;
  const numel = e.shape.reduce((a, b) => a * b, 1);
  const dims = req.transpose ? [e.shape[1]!, e.shape[0]!] : (req.dims ?? e.shape);
  return {
    name: e.name,
    dataType: dst,
    dims,
    byteLength: numel * dstSize,
    sourceOffset: e.offset,
    async write(sink) {
      if (req.transpose) {
        // One whole matrix in memory (PickScore's largest: 5120×1280 f32 = 26 MB).
        const raw = await st.read(e);
        await sink(transpose2d(conv(raw), e.shape[0]!, e.shape[1]!, dstSize));
        return;
      }
      for (let start = 0; start < numel; start += CHUNK_ELEMS) {
        const n = Math.min(CHUNK_ELEMS, numel - start);
        const raw = await st.read(e, start * srcSize, n * srcSize);
        await sink(conv(raw));
      }
    },
  };
}

/** The checkpoint entry `name` when it has a float dtype and shape `shape`; else records the problem. */
function checkedEntry(st: SafetensorsFile, name: string, shape: number[], problems: string[]): SafetensorsEntry | undefined {
  const e = st.get(name);
  const expected = `[${shape.join(", ")}]`;
  if (!e) {
    problems.push(`missing weight ${name} (expected ${expected})`);
    return undefined;
  }
  if (!FLOAT_SOURCES.includes(e.dtype)) {
    problems.push(`weight ${name} has dtype ${e.dtype}; expected F32, F16 or BF16`);
    return undefined;
  }
  if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
    problems.push(`weight ${name} has shape [${e.shape.join(", ")}]; expected ${expected}`);
    return undefined;
  }
  return e;
}

/** 1-D tensors concatenated into one initializer `as` (MultiHeadAttention's [q | k | v] bias). */
function concatSource(st: SafetensorsFile, entries: SafetensorsEntry[], dst: DataType, as: string): TensorSource {
  const parts = entries.map((e) => weightSource(st, e, dst, { shape: e.shape }));
  const length = entries.reduce((a, e) => a + e.shape[0]!, 0);
  return {
    name: as,
    dataType: dst,
    dims: [length],
    byteLength: parts.reduce((a, p) => a + p.byteLength, 0),
    sourceOffset: entries[0]!.offset,
    async write(sink) {
      for (const p of parts) await p.write(sink);
    },
  };
}

/** The WeightFn the graph builders call: validates each request against the checkpoint, records problems. */
function weightProvider(st: SafetensorsFile, dtype: GraphDtype, problems: string[]): WeightFn {
  return (g: GraphBuilder, name: string, req: WeightRequest) => {
    const e = checkedEntry(st, name, req.shape, problems);
    const more = (req.concat?.names ?? []).map((n) => checkedEntry(st, n, req.shape, problems));
    if (!e || more.some((m) => m === undefined)) return req.concat?.as ?? name;
    const dst = dtype === "fp16" && req.precision !== "fp32" ? DataType.FLOAT16 : DataType.FLOAT;
    if (req.concat) return g.initializer(concatSource(st, [e, ...(more as SafetensorsEntry[])], dst, req.concat.as));
    if (req.int8) {
      const read = async () => new Float32Array(convertFloats(await st.read(e), e.dtype as FloatSrc, DataType.FLOAT).buffer);
      return g.initializer(quantizedWeightSource(name, [e.shape[0]!, e.shape[1]!], req.int8, e.offset, read));
    }
    return g.initializer(weightSource(st, e, dst, req));
  };
}

async function readScalar(st: SafetensorsFile, name: string): Promise<number> {
  const e = st.get(name);
  if (!e) throw badModel(`${st.file}: missing weight ${name} (expected a scalar)`, { file: st.file, missing: [name] });
  if (!FLOAT_SOURCES.includes(e.dtype) || e.shape.reduce((a, b) => a * b, 1) !== 1) {
    throw badModel(`${st.file}: ${name} is ${e.dtype} [${e.shape.join(", ")}]; expected one F32, F16 or BF16 value`, { file: st.file });
  }
  const f = new Float32Array(convertFloats(await st.read(e), e.dtype as FloatSrc, DataType.FLOAT).buffer);
  return f[0]!;
}

async function hasTokenizerFiles(dir: string): Promise<boolean> {
  return (
    (await exists(path.join(dir, "tokenizer.json"))) ||
    ((await exists(path.join(dir, "vocab.json"))) && (await exists(path.join(dir, "merges.txt"))))
  );
}

async function fileDigest(file: string): Promise<{ size: number; sha256: string }> {
  const data = await readFile(file);
  return { size: data.byteLength, sha256: createHash("sha256").update(data).digest("hex") };
}

function tmpSuffix(): string {
  return `.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** Copies the tokenizer files into `<out>/tokenizer` (through a temp folder). */
async function copyTokenizer(hfDir: string, out: string, explicit: string | undefined): Promise<void> {
  let from: string;
  if (explicit !== undefined) {
    if (!(await exists(explicit))) {
      const message = `Tokenizer folder ${explicit} does not exist; expected tokenizer.json, or vocab.json and merges.txt`;
      throw new PickrankError("NOT_FOUND", message, { details: { path: explicit, option: "--tokenizer" } });
    }
    if (!(await hasTokenizerFiles(explicit))) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Tokenizer folder ${explicit} has no tokenizer files; expected tokenizer.json, or vocab.json and merges.txt`,
        { details: { dir: explicit } },
      );
    }
    from = explicit;
  } else if (await hasTokenizerFiles(hfDir)) {
    from = hfDir;
  } else {
    from = defaultTokenizerDir();
  }
  const dest = path.join(out, TOKENIZER_DIR);
  const tmp = dest + tmpSuffix();
  await makeDir(tmp);
  try {
    for (const f of TOKENIZER_FILES) {
      if (await exists(path.join(from, f))) await copyFile(path.join(from, f), path.join(tmp, f));
    }
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

const preprocessorSchema = z.object({
  size: z.union([z.number().int().positive(), z.object({ shortest_edge: z.number().int().positive() })]).optional(),
  crop_size: z
    .union([z.number().int().positive(), z.object({ height: z.number().int().positive(), width: z.number().int().positive() })])
    .optional(),
  image_mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
  image_std: z.tuple([z.number(), z.number(), z.number()]).optional(),
});

/** Preprocessing settings: the HF folder's preprocessor_config.json when present, else CLIP's at the config's image size. */
async function preprocessSettings(hfDir: string, cfg: ClipConfig): Promise<ModelManifest["preprocess"]> {
  const file = path.join(hfDir, "preprocessor_config.json");
  const base = { size: cfg.vision.image_size, mean: CLIP_MEAN, std: CLIP_STD };
  if (!(await exists(file))) return base;
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(file, "utf8"));
  } catch (e) {
    throw badModel(`${file} is not valid JSON (${(e as Error).message})`, { file }, e);
  }
  const p = preprocessorSchema.safeParse(raw);
  if (!p.success) throw badModel(`${file}: ${p.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`, { file });
  const crop = p.data.crop_size;
  const size = crop === undefined ? base.size : typeof crop === "number" ? crop : crop.height;
  if (typeof crop === "object" && crop.height !== crop.width) {
    throw badModel(`${file}: crop_size ${crop.height}x${crop.width} is not square; expected a square crop`, { file });
  }
  const resize = p.data.size === undefined ? size : typeof p.data.size === "number" ? p.data.size : p.data.size.shortest_edge;
  if (resize !== size) {
    // The manifest (and the scorer's preprocessing) has one size: resize the short edge to it, crop to it.
    throw badModel(
      `${file}: resize to ${resize} then crop to ${size} is not supported; expected the shortest edge equal to the crop size`,
      { file },
    );
  }
  if (size !== cfg.vision.image_size) {
    throw badModel(`${file}: crop size ${size} differs from the vision config's image_size ${cfg.vision.image_size}; expected them equal`, {
      file,
    });
  }
  return { size, mean: p.data.image_mean ?? base.mean, std: p.data.image_std ?? base.std };
}

function modelDef(graph: GraphDef, dtype: string, variant: GraphVariant): ModelDef {
  return {
    irVersion: ONNX_IR_VERSION,
    opsets: graph.opsetImports ?? [{ domain: "", version: ONNX_OPSET }],
    producerName: CONVERTER_NAME,
    producerVersion: CONVERTER_VERSION,
    docString: `PickScore/CLIP ${graph.name} (${dtype}, ${variant} operators), written by pickrank`,
    graph,
  };
}

/** Orders initializers by their position in the safetensors file so reads (and the hash) run sequentially. */
function sortBySource(graph: GraphDef, st: SafetensorsFile): GraphDef {
  const pos = (t: TensorSource) => t.sourceOffset ?? st.get(t.name)?.offset ?? -1;
  return { ...graph, initializers: [...graph.initializers].sort((a, b) => pos(a) - pos(b)) };
}

/** Where the standard graph put each external tensor, with the type and dims it was written with. */
type PlacedTensors = Map<string, { location: string; offset: number; length: number; dataType: number; dims: string }>;

/**
 * A fused graph's initializers, each one that the standard graph already wrote to its data file (same
 * name, type, dims and length: the same bytes) turned into a reference to it, so the weights are on disk once.
 */
function shareStored(graph: GraphDef, placed: PlacedTensors): GraphDef {
  const initializers = graph.initializers.map((t) => {
    const p = placed.get(t.name);
    if (!p || p.dataType !== t.dataType || p.dims !== t.dims.join(",") || p.length !== t.byteLength) return t;
    return { ...t, stored: { location: p.location, offset: p.offset, length: p.length } };
  });
  return { ...graph, initializers };
}

/**
 * When the fused variants are written too, the standard graphs put their weights in external data files
 * past at most this many bytes, so the fused graphs reference the same bytes instead of a copy (PickScore's
 * fp16 text graph, 0.7 GB, would otherwise be on disk three times). The default threshold,
 * CONVERT_EXTERNAL_DATA_THRESHOLD, is the same; this holds when a caller passes a larger one. The tiny
 * test model (6 MB) stays inline.
 */
export const SHARED_WEIGHTS_THRESHOLD = 64 << 20;

const GRAPH_FILES: Record<GraphVariant, { text: string; vision: string }> = {
  standard: { text: TEXT_GRAPH_FILE, vision: VISION_GRAPH_FILE },
  fused: { text: FUSED_TEXT_GRAPH_FILE, vision: FUSED_VISION_GRAPH_FILE },
  "fused-no-mha": { text: "text.fused-no-mha.onnx", vision: "vision.fused-no-mha.onnx" },
};

/** The variants to write: "standard" first (the fused graphs reference its data files), validated. */
function convertVariants(dtype: GraphDtype, asked: GraphVariant[] | undefined): GraphVariant[] {
  const wanted = asked ?? (dtype === "int8" ? ["standard"] : GRAPH_VARIANTS);
  if (!Array.isArray(wanted) || wanted.some((v) => !GRAPH_VARIANTS.includes(v))) {
    throw invalidParameter("variants", `a list of ${GRAPH_VARIANTS.map((v) => `"${v}"`).join(", ")}`, asked);
  }
  if (dtype === "int8" && wanted.some((v) => v !== "standard")) {
    throw invalidParameter(
      "variants",
      'only "standard" with dtype "int8" (its DynamicQuantizeMatMul kernels are the CPU provider\'s)',
      asked,
    );
  }
  return ["standard", ...GRAPH_VARIANTS.filter((v) => v !== "standard" && wanted.includes(v))];
}

/**
 * Writes one graph (progress in bytes of weights); with `record` (the standard graphs), where its external
 * tensors went goes into `placed`, for the variants to reference (only the standard graphs' files are shared).
 */
async function writeGraph(
  out: string,
  file: string,
  model: ModelDef,
  o: { stage: string; threshold: number; placed: PlacedTensors; record: boolean; onProgress?: (p: ConvertProgress) => void },
): Promise<void> {
  const inits = model.graph.initializers;
  const total = inits.reduce((a, t) => a + (t.stored ? 0 : t.byteLength), 0);
  const sizes = new Map(inits.map((t) => [t.name, t.stored ? 0 : t.byteLength]));
  let done = 0;
  o.onProgress?.({ stage: o.stage, done, total });
  const res = await writeOnnxModel(path.join(out, file), model, {
    externalDataThreshold: o.threshold,
    onTensor: (_i, _n, name) => {
      done += sizes.get(name) ?? 0;
      o.onProgress?.({ stage: o.stage, done, total });
    },
  });
  if (!o.record) return;
  const location = res.externalData ? path.basename(res.externalData.file) : undefined;
  for (const [name, at] of res.externalData?.placed ?? []) {
    const t = inits.find((i) => i.name === name)!;
    o.placed.set(name, { location: location!, ...at, dataType: t.dataType, dims: t.dims.join(",") });
  }
}

/**
 * Converts a transformers CLIPModel folder (config.json + model.safetensors in fp32, fp16 or bf16) into
 * a pickrank model folder: text.onnx and vision.onnx graphs reproducing CLIPModel's text and image
 * embeddings, the tokenizer and pickrank.json (written last). Weights stream one tensor at a time.
 * @throws BAD_INPUT (options), NOT_FOUND (a missing folder or file), BAD_MODEL (a checkpoint the
 * graphs cannot represent), BAD_TOKENIZER, INTERNAL (a big-endian machine).
 */
export async function convertModel(hfDir: string, opts: ConvertOptions): Promise<ConvertResult> {
  if (typeof hfDir !== "string" || hfDir === "") throw invalidParameter("hfDir", "a path to a Hugging Face model folder", hfDir);
  if (!opts || typeof opts.out !== "string" || opts.out === "") throw invalidParameter("out", "a path for the model folder", opts?.out);
  const dtype = opts.dtype ?? "fp32";
  if (!CONVERT_DTYPES.includes(dtype)) throw invalidParameter("dtype", '"fp32", "fp16" or "int8"', dtype);
  const variants = convertVariants(dtype, opts.variants);
  const threshold = opts.externalDataThreshold ?? CONVERT_EXTERNAL_DATA_THRESHOLD;
  if (!Number.isFinite(threshold) || threshold < 0)
    throw invalidParameter("externalDataThreshold", "a non-negative number of bytes", threshold);
  if (os.endianness() !== "LE")
    throw new PickrankError("INTERNAL", "The converter needs a little-endian machine (safetensors and ONNX store little-endian)");
  const graphOpts: ClipGraphOptions = { ...DEFAULT_GRAPH_OPTIONS, ...opts.graph, dtype };

  if (!(await exists(hfDir))) {
    throw new PickrankError("NOT_FOUND", `Model folder ${hfDir} does not exist; expected a folder with config.json and model.safetensors`, {
      details: { path: hfDir },
    });
  }
  const configFile = path.join(hfDir, "config.json");
  const cfg = await readClipConfig(configFile);
  const weightsFile = path.join(hfDir, "model.safetensors");
  if (!(await exists(weightsFile))) {
    const hasBin = await exists(path.join(hfDir, "pytorch_model.bin"));
    throw badModel(
      `${hfDir} has no model.safetensors${hasBin ? " (pytorch_model.bin is not supported)" : ""}; expected the CLIPModel weights in safetensors format`,
      { dir: hfDir },
    );
  }

  const given = opts.source?.files ?? [];
  const hubHashed = given.some((f) => f.name === "model.safetensors") && given.some((f) => f.name === "config.json");
  const st = await SafetensorsFile.open(weightsFile, { hash: !hubHashed });
  try {
    const logitScale = await readScalar(st, "logit_scale");
    if (!Number.isFinite(logitScale))
      throw badModel(`${weightsFile}: logit_scale is ${logitScale}; expected a finite number`, { file: weightsFile });

    const problems: string[] = [];
    const weight = weightProvider(st, dtype, problems);
    const graphsOf = (variant: GraphVariant) => ({
      variant,
      text: sortBySource(buildTextGraph(cfg, weight, { ...graphOpts, variant }), st),
      vision: sortBySource(buildVisionGraph(cfg, weight, { ...graphOpts, variant }), st),
    });
    const built = variants.map(graphsOf);
    for (const [name, what] of Object.entries(UNSUPPORTED_TENSORS)) {
      if (st.get(name)) problems.push(`${name} is present: ${what} is not supported (CLIP projections have no bias)`);
    }
    if (problems.length) {
      const unique = [...new Set(problems)];
      throw badModel(`${weightsFile} does not match ${configFile}: ${unique.join("; ")}`, { file: weightsFile, problems: unique });
    }

    const out = path.resolve(opts.out);
    await makeDir(out).catch((e: unknown) => {
      throw fsError(e, {
        action: "create the output folder",
        path: out,
        option: "--out",
        expected: "a folder that can be created and written",
      });
    });
    // Whatever was here is no longer a complete model until the new manifest lands.
    await rm(path.join(out, MANIFEST_FILE), { force: true });

    const placed: PlacedTensors = new Map();
    // With a second variant to share them, large weights go to data files at a lower threshold.
    const standardThreshold = variants.length > 1 ? Math.min(threshold, SHARED_WEIGHTS_THRESHOLD) : threshold;
    for (const b of built) {
      for (const tower of ["text", "vision"] as const) {
        const graph = b.variant === "standard" ? b[tower] : shareStored(b[tower], placed);
        await writeGraph(out, GRAPH_FILES[b.variant][tower], modelDef(graph, dtype, b.variant), {
          stage: b.variant === "standard" ? tower : `${tower} (${b.variant})`,
          threshold: b.variant === "standard" ? standardThreshold : threshold,
          placed,
          record: b.variant === "standard",
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
      }
    }

    for (const v of GRAPH_VARIANTS.filter((v) => !variants.includes(v))) {
      // A variant left by an earlier conversion would be stale (and may reference replaced data files).
      for (const f of Object.values(GRAPH_FILES[v])) for (const g of [f, `${f}.data`]) await rm(path.join(out, g), { force: true });
    }
    opts.onProgress?.({ stage: "tokenizer", done: 0, total: 1 });
    await copyTokenizer(hfDir, out, opts.tokenizerDir);
    opts.onProgress?.({ stage: "tokenizer", done: 1, total: 1 });

    let files: ModelManifest["source"]["files"];
    if (hubHashed) {
      files = given;
    } else {
      opts.onProgress?.({ stage: "hash", done: 0, total: st.size });
      const weightsHash = { name: "model.safetensors", size: st.size, sha256: await st.sha256() };
      opts.onProgress?.({ stage: "hash", done: st.size, total: st.size });
      const ours = [{ name: "config.json", ...(await fileDigest(configFile)) }, weightsHash];
      files = [...ours, ...given.filter((f) => !ours.some((o) => o.name === f.name))];
    }

    const manifest: ModelManifest = parseManifest(
      {
        formatVersion: MANIFEST_FORMAT_VERSION,
        source: {
          ...(opts.source?.repo !== undefined ? { repo: opts.source.repo } : {}),
          ...(opts.source?.revision !== undefined ? { revision: opts.source.revision } : {}),
          files,
        },
        dtype,
        logitScale,
        dims: {
          projection: cfg.projectionDim,
          textWidth: cfg.text.hidden_size,
          visionWidth: cfg.vision.hidden_size,
          contextLength: cfg.text.max_position_embeddings,
          imageSize: cfg.vision.image_size,
          patchSize: cfg.vision.patch_size,
        },
        preprocess: await preprocessSettings(hfDir, cfg),
        tokenizer: { dir: TOKENIZER_DIR },
        graphs: GRAPH_FILES.standard,
        ...(variants.length > 1
          ? { variants: Object.fromEntries(variants.filter((v) => v !== "standard").map((v) => [v, GRAPH_FILES[v]])) }
          : {}),
        createdAt: new Date().toISOString(),
        converter: `${CONVERTER_NAME}/${CONVERTER_VERSION} (onnx opset ${ONNX_OPSET}, ${variants.join(" + ")} ops)`,
      } satisfies ModelManifest,
      MANIFEST_FILE,
    );
    // Written last: a folder with a manifest is a complete model.
    await writeFileAtomic(path.join(out, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
    opts.onProgress?.({ stage: "manifest", done: 1, total: 1 });
    return { dir: out, manifest };
  } finally {
    await st.close();
  }
}

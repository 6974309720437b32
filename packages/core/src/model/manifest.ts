/**
 * `pickrank.json`: what a converted model folder holds and how to use it. Written last by the converter
 * (its presence marks a complete folder), read and validated by everything that loads a model.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { PickrankError } from "@pickrank/contract";
import type { PreprocessSettings } from "../preprocess/image.ts";
import { pathExists as exists } from "@pickrank/contract";

export const MANIFEST_FILE = "pickrank.json";
export const MANIFEST_FORMAT_VERSION = 1;

const posInt = z.number().int().positive();
const triple = z.tuple([z.number(), z.number(), z.number()]);
/** A path inside the model folder: relative, no "..", no drive letters. */
const relPath = z
  .string()
  .min(1)
  .refine((p) => !path.isAbsolute(p) && !p.split(/[\\/]/).includes("..") && !/^[a-zA-Z]:/.test(p), {
    message: "expected a path relative to the model folder, without ..",
  });

export const ManifestSchema = z.object({
  formatVersion: z.literal(MANIFEST_FORMAT_VERSION),
  source: z.object({
    repo: z.string().optional(),
    revision: z.string().optional(),
    files: z.array(z.object({ name: z.string(), size: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  }),
  dtype: z.enum(["fp32", "fp16", "int8"]),
  logitScale: z.number().finite(),
  dims: z.object({
    projection: posInt,
    textWidth: posInt,
    visionWidth: posInt,
    contextLength: posInt,
    imageSize: posInt,
    patchSize: posInt,
  }),
  preprocess: z.object({
    size: posInt,
    mean: triple,
    std: triple,
    maxPixels: posInt.optional(),
  }),
  tokenizer: z.object({ dir: relPath }),
  graphs: z.object({ text: relPath, vision: relPath }),
  variants: z
    .object({
      fused: z.object({ text: relPath, vision: relPath }).optional(),
      "fused-no-mha": z.object({ text: relPath, vision: relPath }).optional(),
    })
    .optional(),
  createdAt: z.string(),
  converter: z.string(),
});

/**
 * A converted model folder's pickrank.json: where the weights came from (repo, revision, files with
 * size in bytes and sha256), the graphs' dtype, the raw logit scale (scores use exp), the CLIP
 * dimensions (projection = embedding length, context length = 77 token ids for PickScore, image size in
 * pixels), the image preprocessing settings and the relative paths of the tokenizer and the two graphs
 * (and of the fused variant's two, when the converter wrote them). dtype "int8" is the CPU's quantized graph.
 * An invalid one is BAD_MODEL.
 */
export interface ModelManifest {
  formatVersion: 1;
  source: { repo?: string; revision?: string; files: { name: string; size: number; sha256: string }[] };
  dtype: "fp32" | "fp16" | "int8";
  logitScale: number;
  dims: { projection: number; textWidth: number; visionWidth: number; contextLength: number; imageSize: number; patchSize: number };
  preprocess: PreprocessSettings;
  tokenizer: { dir: string };
  /** The standard graphs (ai.onnx operators only), which every device runs. */
  graphs: { text: string; vision: string };
  /**
   * The other graph variants, when written: "fused" (com.microsoft MultiHeadAttention, SkipLayerNormalization,
   * BiasGelu) and "fused-no-mha" (the same but attention), see convert/clip-graph.ts GraphVariant.
   */
  variants?: { fused?: { text: string; vision: string }; "fused-no-mha"?: { text: string; vision: string } };
  createdAt: string;
  converter: string;
}

function formatIssues(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
}

/** Validates a parsed manifest object; `where` names the folder in errors. */
export function parseManifest(raw: unknown, where = MANIFEST_FILE): ModelManifest {
  const r = ManifestSchema.safeParse(raw);
  if (!r.success) {
    throw new PickrankError("BAD_MODEL", `${where}: invalid manifest: ${formatIssues(r.error)}`, { details: { file: where } });
  }
  return r.data as ModelManifest;
}

/**
 * Reads and validates `<dir>/pickrank.json`, then checks that the graphs and tokenizer folder it names
 * are there. NOT_FOUND when `dir` does not exist; BAD_MODEL names the folder and what is missing otherwise.
 */
export async function readManifest(dir: string): Promise<ModelManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && !(await exists(dir))) {
      const message = `Model folder ${dir} does not exist; expected a converted model folder (pickrank.json, text.onnx, vision.onnx)`;
      throw new PickrankError("NOT_FOUND", message, { cause: e, details: { path: dir, option: "--model" } });
    }
    throw new PickrankError(
      "BAD_MODEL",
      code === "ENOENT"
        ? `${dir} is not a converted model folder: ${MANIFEST_FILE} is missing (convert one with \`pickrank model convert\` or \`pickrank model pull\`)`
        : `cannot read ${file} (${code ?? String(e)})`,
      { cause: e, details: { dir, file } },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PickrankError("BAD_MODEL", `${file} is not valid JSON (${(e as Error).message})`, { cause: e, details: { dir, file } });
  }
  const m = parseManifest(raw, file);
  const missing: string[] = [];
  const graphFiles = [m.graphs, ...Object.values(m.variants ?? {})].flatMap((g) => [g.text, g.vision]);
  for (const g of graphFiles) if (!(await exists(path.join(dir, g)))) missing.push(g);
  if (!(await exists(path.join(dir, m.tokenizer.dir)))) missing.push(`${m.tokenizer.dir}/`);
  if (missing.length) {
    throw new PickrankError("BAD_MODEL", `Model folder ${dir} is incomplete: missing ${missing.join(", ")} named by ${MANIFEST_FILE}`, {
      details: { dir, missing },
    });
  }
  return m;
}

/** Which graph variant a session uses: "auto" picks per device (see graphsForDevice). */
export type GraphVariantRequest = "auto" | "standard" | "fused" | "fused-no-mha";

/**
 * The variants "auto" tries per device, in order; the first the model has is used, else "standard".
 * CUDA: "fused" (its optimizer does not fuse our attention pattern, per-head Reshape/Transpose around two
 * MatMuls). WebGPU: "fused-no-mha". ORT registers its online fusions for the CPU and CUDA providers
 * only, so the standard graph runs on WebGPU as ~1,000 small kernels; its SkipLayerNormalization and BiasGelu
 * kernels hold the fp32 bounds, but its MultiHeadAttention (onnxruntime-node 1.30, measured on SwiftShader)
 * is wrong from 32 tokens on (0.08 absolute at 32 … 257 tokens against the CPU kernel, exact up to 17; the
 * tiny CLIP's text embeddings off by 0.36 relative), so WebGPU keeps unfused attention until a GPU run of
 * bench/gpu shows the kernel right there. The CPU keeps the standard graph: in interleaved runs on the
 * PickScore-sized model it was as fast as the fused one or 4–7 % faster (docs/benchmarks.md), and int8 has only it.
 */
export const FUSED_BY_DEVICE: Readonly<Record<string, readonly ("fused" | "fused-no-mha")[]>> = {
  cuda: ["fused", "fused-no-mha"],
  webgpu: ["fused-no-mha"],
  cpu: [],
};

/**
 * The graphs (paths relative to the model folder) and their variant for `device`: the one asked for, or
 * under "auto" the first of FUSED_BY_DEVICE[device] the model has, else the standard ones. BAD_INPUT
 * when a variant is asked of a model converted without it (naming --graph).
 */
export function graphsForDevice(
  m: ModelManifest,
  device: string,
  request: GraphVariantRequest = "auto",
): { variant: "standard" | "fused" | "fused-no-mha"; text: string; vision: string } {
  if (request === "standard") return { variant: "standard", ...m.graphs };
  if (request !== "auto") {
    const g = m.variants?.[request];
    if (!g) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected a model converted with the ${request} graph variant for --graph ${request} but this one has none`,
        {
          details: { option: "--graph", variants: Object.keys(m.variants ?? {}) },
        },
      );
    }
    return { variant: request, ...g };
  }
  for (const v of FUSED_BY_DEVICE[device] ?? []) {
    const g = m.variants?.[v];
    if (g) return { variant: v, ...g };
  }
  return { variant: "standard", ...m.graphs };
}

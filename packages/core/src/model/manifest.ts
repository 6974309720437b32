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
  fused: z.object({ text: relPath, vision: relPath }).optional(),
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
  /** The fused variant (com.microsoft MultiHeadAttention, SkipLayerNormalization, BiasGelu), when written. */
  fused?: { text: string; vision: string };
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
  const graphFiles = [m.graphs.text, m.graphs.vision, ...(m.fused ? [m.fused.text, m.fused.vision] : [])];
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
export type GraphVariantRequest = "auto" | "standard" | "fused";

/**
 * Devices that get the fused variant under "auto". WebGPU: ONNX Runtime registers its attention,
 * SkipLayerNormalization and Gelu fusions for the CPU and CUDA providers only, so the standard graph runs
 * there as ~1,000 small kernels, while the WebGPU provider has MultiHeadAttention, SkipLayerNormalization
 * and BiasGelu kernels. CUDA: its optimizer does not fuse our attention pattern (per-head Reshape/Transpose
 * around two MatMuls) either. The CPU keeps the standard graph: measured fastest there (docs/benchmarks.md).
 */
export const FUSED_BY_DEFAULT: ReadonlySet<string> = new Set(["webgpu", "cuda"]);

/**
 * The graphs (paths relative to the model folder) and their variant for `device`: the fused ones when
 * asked for, or under "auto" on a FUSED_BY_DEFAULT device, when the model has them; the standard ones
 * otherwise. BAD_INPUT when "fused" is asked of a model converted without it.
 */
export function graphsForDevice(
  m: ModelManifest,
  device: string,
  request: GraphVariantRequest = "auto",
): { variant: "standard" | "fused"; text: string; vision: string } {
  if (request === "fused" && !m.fused) {
    throw new PickrankError("BAD_INPUT", "Expected a model converted with the fused graph variant for --graph fused but this one has none", {
      details: { option: "--graph" },
    });
  }
  const fused = m.fused && (request === "fused" || (request === "auto" && FUSED_BY_DEFAULT.has(device)));
  return fused ? { variant: "fused", ...m.fused! } : { variant: "standard", ...m.graphs };
}

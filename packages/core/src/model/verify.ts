/**
 * Fidelity of one converted model against another on the same prompts and images: how far a cheaper
 * graph (int8, fp16, the fused variant) moves PickScore's embeddings, scores and rankings away from a
 * reference graph (fp32). What `pickrank model verify` prints, so a user with the real weights can see on
 * their own images whether int8 keeps their rankings.
 */
import { kendall } from "../stats/rank-stats.ts";
import { invalidParameter } from "@pickrank/contract";
import type { ImageInput } from "../preprocess/image.ts";
import { Scorer } from "../scorer.ts";
import type { DeviceRequest } from "../runtime/ort.ts";

/** L2-normalized embeddings of a model on P prompts and I images, and its raw logit scale. */
export interface EmbeddingSet {
  text: Float32Array[];
  images: Float32Array[];
  logitScale: number;
}

/**
 * Candidate against reference. Cosines are between the two models' normalized embeddings of the same
 * input (1 = same direction). Scores are PickScore logits (exp(logit_scale) · cos, ≈ 20 … 40 for PickScore);
 * `relMaxAbs` divides the largest error by the largest |reference score|. Kendall τ-b compares the two
 * rankings of the images for each prompt (1 = same order; needs ≥ 2 images). `sameBest`: prompts whose
 * top image is the same.
 */
export interface FidelityReport {
  prompts: number;
  images: number;
  textCosine: { min: number; mean: number };
  imageCosine: { min: number; mean: number };
  scoreError: { maxAbs: number; meanAbs: number; relMaxAbs: number };
  probError: { maxAbs: number };
  kendallTau: { min: number; mean: number };
  sameBest: number;
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function stats(xs: number[]): { min: number; mean: number } {
  return { min: Math.min(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}

/**
 * Kendall's τ-b of two score lists over the same items (rank-stats.ts `kendall`); 1 where τ is undefined
 * (fewer than 2 items, or a constant list: nothing to disagree on). BAD_INPUT when the lengths differ.
 */
export function kendallTau(a: readonly number[], b: readonly number[]): number {
  return kendall(a, b) ?? 1;
}

function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** PickScore logits [prompt][image] of an embedding set. */
function logits(s: EmbeddingSet): number[][] {
  const scale = Math.exp(s.logitScale);
  return s.text.map((t) => s.images.map((im) => scale * dot(t, im)));
}

/**
 * Compares a candidate's embeddings with a reference's for the same prompts and images (same order).
 * BAD_INPUT when the counts or embedding lengths differ, or there is no prompt or no image.
 */
export function compareEmbeddings(reference: EmbeddingSet, candidate: EmbeddingSet): FidelityReport {
  const P = reference.text.length;
  const I = reference.images.length;
  if (P === 0 || I === 0) throw invalidParameter("reference", "at least one prompt and one image", `${P} prompts, ${I} images`);
  if (candidate.text.length !== P || candidate.images.length !== I) {
    throw invalidParameter("candidate", `${P} prompts and ${I} images`, `${candidate.text.length} and ${candidate.images.length}`);
  }
  if (candidate.text[0]!.length !== reference.text[0]!.length) {
    throw invalidParameter("candidate", `embeddings of length ${reference.text[0]!.length}`, candidate.text[0]!.length);
  }
  const lr = logits(reference);
  const lc = logits(candidate);
  const errs = lr.flatMap((row, p) => row.map((v, i) => Math.abs(lc[p]![i]! - v)));
  const probErrs = lr.flatMap((row, p) => {
    const pc = softmax(lc[p]!);
    return softmax(row).map((v, i) => Math.abs(pc[i]! - v));
  });
  const taus = lr.map((row, p) => kendallTau(row, lc[p]!));
  const best = (row: number[]) => row.indexOf(Math.max(...row));
  const maxRef = Math.max(...lr.flat().map(Math.abs));
  return {
    prompts: P,
    images: I,
    textCosine: stats(reference.text.map((t, p) => dot(t, candidate.text[p]!))),
    imageCosine: stats(reference.images.map((im, i) => dot(im, candidate.images[i]!))),
    scoreError: {
      maxAbs: Math.max(...errs),
      meanAbs: errs.reduce((a, b) => a + b, 0) / errs.length,
      relMaxAbs: Math.max(...errs) / maxRef,
    },
    probError: { maxAbs: Math.max(...probErrs) },
    kendallTau: stats(taus),
    sameBest: lr.filter((row, p) => best(row) === best(lc[p]!)).length,
  };
}

/** Options of verifyModel: the two model folders, what to score, the device for both (default "cpu"). */
export interface VerifyOptions {
  /** The model under test (for instance an int8 conversion). */
  model: string;
  /** The model it is held against (for instance the fp32 conversion of the same weights). */
  reference: string;
  prompts: readonly string[];
  images: readonly ImageInput[];
  device?: DeviceRequest;
  /** Graph variant for the model under test (default "auto"); the reference runs its standard graphs. */
  graph?: "auto" | "standard" | "fused" | "fused-no-mha";
}

/**
 * Embeds `prompts` and `images` with both models (one after the other, so only one is in memory) and
 * compares them (compareEmbeddings). Throws what Scorer.create and Scorer.embedImages throw (NOT_FOUND,
 * BAD_MODEL, BAD_IMAGE, DEVICE_UNAVAILABLE …); BAD_INPUT for no prompt or no image.
 */
export async function verifyModel(opts: VerifyOptions): Promise<FidelityReport & { device: string; graphVariant: string }> {
  if (!opts.prompts.length) throw invalidParameter("prompts", "at least one prompt", opts.prompts.length);
  if (!opts.images.length) throw invalidParameter("images", "at least one image", opts.images.length);
  const embed = async (model: string, graph: NonNullable<VerifyOptions["graph"]>) => {
    const scorer = await Scorer.create({ model, device: opts.device ?? "cpu", graph });
    try {
      const text: Float32Array[] = [];
      for (const p of opts.prompts) text.push(await scorer.embedText(p));
      const images = await scorer.embedImages(opts.images);
      return { set: { text, images, logitScale: scorer.logitScale }, device: scorer.device, graphVariant: scorer.graphVariant };
    } finally {
      await scorer.dispose();
    }
  };
  const ref = await embed(opts.reference, "standard");
  const cand = await embed(opts.model, opts.graph ?? "auto");
  return { ...compareEmbeddings(ref.set, cand.set), device: cand.device, graphVariant: cand.graphVariant };
}

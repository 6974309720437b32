/**
 * Every numeric bound the parity tests assert against the Python reference, in one table: the bound,
 * the values measured beside it (where), and what it bounds. The CPU and WebGPU parity tests
 * (convert.test.ts, convert-inputs.test.ts, scorer.test.ts, webgpu.test.ts) read their bounds from here
 * and print what they measure, so a changed figure shows in the test output; the README's "Faithful to
 * PickScore" quotes these numbers.
 *
 * Metric: max |ours − reference| / max |reference| over one whole output (relative to the output's
 * scale, so components near zero do not blow the ratio up).
 *
 * Rule: a bound sits about three to four times above the largest value measured, room for other
 * CPUs' SIMD paths and other GPUs' kernels and nothing more; a bound is never widened to make a test
 * pass. A wiring mistake (a wrong transpose, a missing layer norm, the wrong GELU) shows as errors of
 * order 1e-1 to 1, far above every bound here.
 *
 * Where "cpu" figures come from: onnxruntime-node 1.30, CPU provider, Linux x86-64 (Intel Xeon with
 * AVX-512), graph optimizations "all". "webgpu-swiftshader": the same package's WebGPU provider on
 * SwiftShader (Debian chromium's software Vulkan driver), which has no shader-f16, so fp16 graphs have
 * no WebGPU figure yet; on a GPU with shader-f16 webgpu.test.ts holds fp16 runs to the fp16 bounds.
 * "fused" / "fused-no-mha": the graph variants with com.microsoft kernels (graph-variants.test.ts,
 * webgpu.test.ts), held to the same bounds. WebGPU's MultiHeadAttention is absent from this table on
 * purpose: it misses the reference by 0.36 relative on the tiny CLIP's text (webgpu.test.ts, KNOWN FAULT).
 */

/** The outputs of the reference fixture (model.json) the parity tests compare. */
export type ParityOutput =
  | "text_embeds_unnormalized"
  | "image_embeds_unnormalized"
  | "text_embeds"
  | "image_embeds"
  | "logits_per_image"
  | "probs_over_images_per_prompt";

export interface Tolerance {
  /** The assertion is `error < bound`. */
  bound: number;
  /** Largest error measured, by where it was measured. */
  measured: Record<string, number>;
  /** What the bound bounds, and why it sits where it does. */
  what: string;
}

/**
 * Softmax turns logit errors into probability errors: dp_i = p_i · (dl_i − Σ_j p_j dl_j). Logits here
 * reach 40 (exp(logit_scale) = 100 times cosines up to 0.4), so a relative logit error e is an absolute
 * one of up to 40·e, and what reaches a probability is the spread of those absolute errors between the
 * images of one prompt, weighted by p. Which way each image's rounding falls decides the figure, so
 * probabilities get their own, larger bound in both precisions.
 */
const PROBS_WHY = "softmax over the images of a prompt: the spread of absolute logit errors (logits up to 40) times p";

const FP32: Record<ParityOutput, Tolerance> = {
  text_embeds_unnormalized: {
    bound: 3e-6,
    measured: {
      cpu: 4.3e-7,
      "webgpu-swiftshader": 7.4e-7,
      "cpu fused": 4.9e-7,
      "cpu fused-no-mha": 5.8e-7,
      "webgpu-swiftshader fused-no-mha": 7.4e-7,
    },
    what: "projected text embeddings (text.onnx output)",
  },
  image_embeds_unnormalized: {
    bound: 3e-6,
    measured: {
      cpu: 4.3e-7,
      "webgpu-swiftshader": 2.6e-7,
      "cpu fused": 2.6e-7,
      "cpu fused-no-mha": 3.5e-7,
      "webgpu-swiftshader fused-no-mha": 2.6e-7,
    },
    what: "projected image embeddings (vision.onnx output)",
  },
  text_embeds: {
    bound: 3e-6,
    measured: {
      cpu: 4.7e-7,
      "webgpu-swiftshader": 9.3e-7,
      "cpu Scorer": 4.9e-7,
      "cpu fused": 5.5e-7,
      "webgpu-swiftshader fused-no-mha": 8.1e-7,
    },
    what: "L2-normalized text embeddings",
  },
  image_embeds: {
    bound: 3e-6,
    measured: {
      cpu: 3.2e-7,
      "webgpu-swiftshader": 2.5e-7,
      "cpu Scorer": 3.4e-7,
      "cpu fused": 2.1e-7,
      "webgpu-swiftshader fused-no-mha": 2.6e-7,
    },
    what: "L2-normalized image embeddings",
  },
  logits_per_image: {
    bound: 3e-6,
    measured: {
      cpu: 4.8e-7,
      "webgpu-swiftshader": 6.4e-7,
      "cpu Scorer": 4.5e-7,
      "cpu fused": 4.2e-7,
      "webgpu-swiftshader fused-no-mha": 7.0e-7,
    },
    what: "scores: exp(logit_scale) · cos",
  },
  probs_over_images_per_prompt: {
    bound: 2e-5,
    measured: {
      cpu: 4.6e-6,
      "webgpu-swiftshader": 3.0e-6,
      "cpu Scorer": 4.7e-6,
      "cpu fused": 3.9e-6,
      "webgpu-swiftshader fused-no-mha": 2.3e-6,
    },
    what: `probabilities; ${PROBS_WHY}`,
  },
};

/**
 * fp16 graphs: fp16 weights and activations (layer norms in fp32), fp32 at the graph's edges. On the CPU
 * provider most fp16 ops run through inserted casts to fp32, so the error is the fp16 rounding of
 * weights and of the activations between ops (2^-11 ≈ 4.9e-4 relative per rounding).
 *
 * Probabilities: 4.8e-3 now, 2.4e-3 before commit 44e8032 wrote GELU's x/√2 as Div(x, fp16(√2) =
 * 1.4140625) instead of Mul(x, fp16(1/√2) = 0.70703125), the form ORT fuses. The two constants round in
 * opposite directions (each 1.1e-4 relative), so every erf input in the MLPs rounds differently; the
 * fusion itself changes nothing measurable (with optimizations off: 5.2e-3). Embeddings and logits
 * stayed as they were (logits 4.5e-4 → 4.6e-4). The probability error is that logit noise through the
 * softmax: the largest entry is the 77-token prompt × the gray image (p = 0.575), whose logit moved by
 * −6.7e-3 while the other images' moved by −2e-3 … +9e-3, so Δp = −2.8e-3; with the old constant the
 * same entry moved −1.4e-3. It is the vision tower's rounding: fp16 image embeddings with fp32 text
 * give 4.5e-3 (old form 1.9e-3), fp16 text with fp32 images 7.7e-4.
 */
const FP16: Record<ParityOutput, Tolerance> = {
  text_embeds_unnormalized: { bound: 3e-3, measured: { cpu: 1.06e-3 }, what: "projected text embeddings, fp16 graph" },
  image_embeds_unnormalized: { bound: 1.5e-3, measured: { cpu: 5.2e-4 }, what: "projected image embeddings, fp16 graph" },
  text_embeds: { bound: 3e-3, measured: { cpu: 9.8e-4 }, what: "L2-normalized text embeddings, fp16 graph" },
  image_embeds: { bound: 1.5e-3, measured: { cpu: 5.0e-4 }, what: "L2-normalized image embeddings, fp16 graph" },
  // The fused fp16 graph on the CPU (MultiHeadAttention, SkipLayerNormalization in fp16) comes closest: 8.8e-4 of 1.5e-3.
  logits_per_image: { bound: 1.5e-3, measured: { cpu: 4.6e-4, "cpu fused": 8.8e-4 }, what: "scores, fp16 graphs" },
  probs_over_images_per_prompt: {
    bound: 1.5e-2,
    measured: { cpu: 4.8e-3, "cpu, GELU as Mul(x, 1/√2) before 44e8032": 2.4e-3 },
    what: `probabilities, fp16 graphs; ${PROBS_WHY}`,
  },
};

/** The one table. */
export const TOLERANCES = {
  fp32: FP32,
  fp16: FP16,
  /** Checkpoints stored in lower precision, converted to fp32 graphs (convert-inputs.test.ts). */
  source: {
    fp16: {
      bound: 3e-3,
      measured: { "cpu text": 9.0e-4, "cpu image": 2.6e-4, "cpu fp16 graphs text": 9.1e-4 },
      what: "unnormalized embeddings from F16 weights: fp16's rounding of the weights (10 mantissa bits)",
    },
    bf16: {
      bound: 1.5e-2,
      measured: { "cpu text": 4.2e-3, "cpu image": 2.1e-3 },
      what: "unnormalized embeddings from BF16 weights: bf16 keeps 7 mantissa bits, 8× fp16's step",
    },
  },
  /** The Scorer on WebGPU against the Scorer on the CPU, same fp32 model and images (webgpu.test.ts). */
  webgpuVsCpuScores: {
    bound: 6e-6,
    measured: { "webgpu-swiftshader": 2.1e-6 },
    what: "scores from image files: each device is within the fp32 logits bound (3e-6) of the reference, so within twice it of each other",
  },
} as const satisfies {
  fp32: Record<ParityOutput, Tolerance>;
  fp16: Record<ParityOutput, Tolerance>;
  source: Record<"fp16" | "bf16", Tolerance>;
  webgpuVsCpuScores: Tolerance;
};

/** The bound for one reference output in one precision. */
export function parityBound(dtype: "fp32" | "fp16", output: string): number {
  const t = (TOLERANCES[dtype] as Record<string, Tolerance>)[output];
  if (!t) throw new Error(`no ${dtype} tolerance for output ${output}; add it to test/tolerances.ts`);
  return t.bound;
}

/** One int8 fidelity figure: the bound the test holds, what was measured, and what it is. */
export interface FidelityFigure {
  bound: number;
  measured: Record<string, number>;
  what: string;
}

/**
 * int8 graphs against the fp32 graphs of the same weights (int8.test.ts, `pickrank model verify`): not a
 * parity bound against the reference, a fidelity figure of its own. int8 rounds every encoder weight to
 * 8 bits per output channel and every MatMul input to 8 bits per tensor at run time, errors of order 1e-2
 * relative per layer that no fp32 bar is meant to hold. Cosines and τ are lower bounds (the test asserts
 * `measured > bound`), errors upper bounds. The tiny CLIP's weights are random (no outlier channels a
 * trained model has), so its figures say the graph is wired right; the PickScore-sized figures and a
 * user's own run of `pickrank model verify` on the real weights are the ones that say what rankings do.
 */
export const INT8_FIDELITY = {
  tiny: {
    imageCosineMin: {
      bound: 0.99994,
      measured: { cpu: 0.999985 },
      what: "min cosine between int8 and fp32 image embeddings, 6 reference images (1 − cos: 1.5e-5 measured, bound 6e-5)",
    },
    textCosineMin: {
      bound: 0.9996,
      measured: { cpu: 0.999893 },
      what: "min cosine between int8 and fp32 text embeddings, 4 reference prompts (1 − cos: 1.1e-4 measured, bound 4e-4)",
    },
    scoreRelMaxAbs: {
      bound: 6e-2,
      measured: { cpu: 1.8e-2 },
      what: "max |score error| / max |fp32 score|, 4 prompts × 6 images (0.74 of 40 logit units; mean 0.49)",
    },
    kendallTauMin: {
      bound: 0.86,
      measured: { cpu: 1 },
      what:
        "min over prompts of Kendall τ-b between int8 and fp32 rankings of the 6 images: every ranking identical here; " +
        "the bound allows one swapped pair of the 15 (τ = 13/15) on another CPU's kernels, no more",
    },
  },
} as const satisfies Record<string, Record<string, FidelityFigure>>;

/**
 * The CLIP text and vision towers as ONNX graphs, emitted block by block. Each block (layer norm,
 * linear, attention, MLP, encoder layer) is one function; the "fused" variant (ORT's com.microsoft
 * MultiHeadAttention / SkipLayerNormalization / BiasGelu, for the GPU) replaces the encoder stack's blocks
 * and leaves the embeddings, pooling and projections as they are. int8 graphs swap the encoder's MatMuls
 * for DynamicQuantizeMatMul.
 *
 * Semantics follow transformers' CLIPModel: pre-LN encoder layers, q scaled by head_dim^-0.5, additive
 * causal mask for text, pooling at the end-of-text token, class token + post_layernorm for vision,
 * projections without bias. Outputs are the unnormalized projected embeddings.
 */
import { GraphBuilder, MS_DOMAIN } from "../onnx/graph-builder.ts";
import { attr, DataType, type GraphDef } from "../onnx/onnx-types.ts";
import type { ClipActivation, ClipConfig } from "./clip-config.ts";

/**
 * Graph dtypes. "int8": fp32 graph whose encoder linear layers are com.microsoft DynamicQuantizeMatMul
 * on int8 weights quantized per output channel (symmetric, scale = max|w| / 127), activations quantized
 * to uint8 per tensor at run time; for the CPU provider (MLAS's u8s8 kernels).
 */
export type GraphDtype = "fp32" | "fp16" | "int8";

/**
 * Graph variants. "standard": ai.onnx operators only, which every provider runs and ORT's CPU/CUDA
 * optimizers fuse themselves. "fused": the com.microsoft kernels written into the graph (MultiHeadAttention
 * on the separate Q/K/V projections, SkipLayerNormalization for each residual sum + next layer norm,
 * BiasGelu with exact erf), for providers whose optimizer does not fuse (WebGPU) or fuses less.
 * "fused-no-mha": the same without MultiHeadAttention (attention as in "standard"): onnxruntime-node
 * 1.30's WebGPU MultiHeadAttention is wrong from 32 tokens on (measured on SwiftShader, see
 * model/manifest.ts FUSED_BY_DEVICE), while its SkipLayerNormalization and BiasGelu hold the fp32 bounds.
 */
export type GraphVariant = "standard" | "fused" | "fused-no-mha";
export const GRAPH_VARIANTS: readonly GraphVariant[] = ["standard", "fused", "fused-no-mha"];

export interface ClipGraphOptions {
  /** "fp16": fp16 weights and compute, fp32 graph inputs and outputs (Cast at the edges). */
  dtype: GraphDtype;
  /** In fp16 graphs, run LayerNormalization in fp32 (Cast around it; its weights stay fp32). */
  layerNormFp32: boolean;
  /** Operator variant (default "standard"). */
  variant?: GraphVariant;
}

export const DEFAULT_GRAPH_OPTIONS: ClipGraphOptions = { dtype: "fp32", layerNormFp32: true, variant: "standard" };

export interface WeightRequest {
  /** Expected shape in the checkpoint (torch layout). */
  shape: number[];
  /** Store transposed ([out, in] → [in, out]) for MatMul. Only for 2-D weights. */
  transpose?: boolean;
  /** Dims in the graph when they differ from the checkpoint's (same element count, no reordering). */
  dims?: number[];
  /** "fp32" keeps the weight fp32 in an fp16 graph (layer norms kept in fp32). */
  precision?: "compute" | "fp32";
  /**
   * For int8 graphs' MatMul weights (with `transpose`): "values" is the int8 [in, out] matrix, "scales"
   * the float32 [out] per-output-channel scales (w ≈ values · scales).
   */
  int8?: "values" | "scales";
  /** 1-D tensors appended after this one (axis 0), stored as one initializer named `as` (MultiHeadAttention's Q/K/V bias). */
  concat?: { names: string[]; as: string };
}

/** Returns the initializer name for a checkpoint tensor, after adding it to the graph `g`. */
export type WeightFn = (g: GraphBuilder, name: string, req: WeightRequest) => string;

/**
 * Additive causal mask value: exp() of it underflows to 0 in fp32 and fp16 alike, and it stays finite
 * in fp16 (max 65504) even after scores of a few ten-thousands are added, unlike finfo(fp32).min.
 */
export const CAUSAL_MASK_VALUE = -30000;

export interface Ctx {
  g: GraphBuilder;
  weight: (name: string, req: WeightRequest) => string;
  opts: ClipGraphOptions;
  consts: Map<string, string>;
}

function cachedConst(ctx: Ctx, key: string, make: () => string): string {
  let v = ctx.consts.get(key);
  if (v === undefined) {
    v = make();
    ctx.consts.set(key, v);
  }
  return v;
}

export function emitLayerNorm(ctx: Ctx, x: string, prefix: string, width: number, eps: number): string {
  const { g } = ctx;
  const fp32 = g.floatType === DataType.FLOAT16 && ctx.opts.layerNormFp32;
  const precision = fp32 ? "fp32" : "compute";
  const scale = ctx.weight(`${prefix}.weight`, { shape: [width], precision });
  const bias = ctx.weight(`${prefix}.bias`, { shape: [width], precision });
  const name = prefix.replace(/\./g, "/");
  const input = fp32 ? g.node("Cast", [x], { attrs: { to: attr.int(DataType.FLOAT) }, name: `${name}/to_fp32` }) : x;
  const y = g.node("LayerNormalization", [input, scale, bias], {
    attrs: { axis: attr.int(-1), epsilon: attr.float(eps) },
    name,
  });
  return fp32 ? g.node("Cast", [y], { attrs: { to: attr.int(DataType.FLOAT16) }, name: `${name}/to_fp16` }) : y;
}

/**
 * y = x · Wᵀ (+ bias), W stored transposed from torch's [out, in]. In int8 graphs one DynamicQuantizeMatMul
 * (int8 weights, per-column scales, the bias as its fifth input); otherwise MatMul, then Add for the bias.
 */
function emitMatMul(ctx: Ctx, x: string, prefix: string, inDim: number, outDim: number, bias?: string): string {
  const { g } = ctx;
  const name = prefix.replace(/\./g, "/");
  const shape = [outDim, inDim];
  if (ctx.opts.dtype === "int8") {
    const w = ctx.weight(`${prefix}.weight`, { shape, transpose: true, int8: "values" });
    const scales = ctx.weight(`${prefix}.weight`, { shape, transpose: true, int8: "scales" });
    return g.node("DynamicQuantizeMatMul", [x, w, scales, "", ...(bias ? [bias] : [])], { domain: MS_DOMAIN, name: `${name}/matmul_int8` });
  }
  const w = ctx.weight(`${prefix}.weight`, { shape, transpose: true });
  const y = g.node("MatMul", [x, w], { name: `${name}/matmul` });
  return bias ? g.node("Add", [y, bias], { name: `${name}/add` }) : y;
}

/** y = x · Wᵀ (+ b), with W stored transposed from torch's [out, in]. */
export function emitLinear(ctx: Ctx, x: string, prefix: string, inDim: number, outDim: number, bias = true): string {
  const b = bias ? ctx.weight(`${prefix}.bias`, { shape: [outDim] }) : undefined;
  return emitMatMul(ctx, x, prefix, inDim, outDim, b);
}

export interface AttentionSpec {
  width: number;
  heads: number;
  /** Additive mask broadcastable to [batch, heads, seq, seq] (text's causal mask). */
  mask?: string;
}

/** Multi-head self-attention on x [batch, seq, width] → [batch, seq, width]. */
export function emitAttention(ctx: Ctx, x: string, prefix: string, spec: AttentionSpec): string {
  return emitLinear(ctx, emitAttentionHeads(ctx, x, prefix, spec), `${prefix}.out_proj`, spec.width, spec.width);
}

/** Q/K/V projections, per-head scaled dot-product attention (Reshape/Transpose, MatMul, Softmax, MatMul), heads merged. */
function emitAttentionHeads(ctx: Ctx, x: string, prefix: string, spec: AttentionSpec): string {
  const { g } = ctx;
  const { width, heads } = spec;
  const headDim = width / heads;
  const name = prefix.replace(/\./g, "/");
  const split = cachedConst(ctx, `split:${heads}:${headDim}`, () => g.int64s("shape_heads", [0, 0, heads, headDim]));
  const merge = cachedConst(ctx, `merge:${width}`, () => g.int64s("shape_merge", [0, 0, width]));
  const scale = cachedConst(ctx, `scale:${headDim}`, () => g.scalar("attn_scale", headDim ** -0.5));

  const q0 = emitLinear(ctx, x, `${prefix}.q_proj`, width, width);
  const q = g.node("Mul", [q0, scale], { name: `${name}/q_scaled` });
  const k = emitLinear(ctx, x, `${prefix}.k_proj`, width, width);
  const v = emitLinear(ctx, x, `${prefix}.v_proj`, width, width);
  const perm = (p: number[]) => ({ perm: attr.ints(p) });
  const qh = g.node("Transpose", [g.node("Reshape", [q, split], { name: `${name}/q_split` })], {
    attrs: perm([0, 2, 1, 3]),
    name: `${name}/q_heads`,
  });
  const kh = g.node("Transpose", [g.node("Reshape", [k, split], { name: `${name}/k_split` })], {
    attrs: perm([0, 2, 3, 1]),
    name: `${name}/k_heads_t`,
  });
  const vh = g.node("Transpose", [g.node("Reshape", [v, split], { name: `${name}/v_split` })], {
    attrs: perm([0, 2, 1, 3]),
    name: `${name}/v_heads`,
  });
  let scores = g.node("MatMul", [qh, kh], { name: `${name}/scores` });
  if (spec.mask) scores = g.node("Add", [scores, spec.mask], { name: `${name}/masked` });
  const probs = g.node("Softmax", [scores], { attrs: { axis: attr.int(-1) }, name: `${name}/softmax` });
  const ctxv = g.node("MatMul", [probs, vh], { name: `${name}/context` });
  return g.node("Reshape", [g.node("Transpose", [ctxv], { attrs: perm([0, 2, 1, 3]), name: `${name}/context_t` }), merge], {
    name: `${name}/merge`,
  });
}

export function emitActivation(ctx: Ctx, x: string, act: ClipActivation, name: string): string {
  const { g } = ctx;
  if (act === "quick_gelu") {
    // x · sigmoid(1.702 x)
    const k = cachedConst(ctx, "quick_gelu_k", () => g.scalar("quick_gelu_k", 1.702));
    const s = g.node("Sigmoid", [g.node("Mul", [x, k], { name: `${name}/scaled` })], { name: `${name}/sigmoid` });
    return g.node("Mul", [x, s], { name });
  }
  // Exact GELU: (x · 0.5) · (1 + erf(x / √2)). Written exactly as torch.onnx exports F.gelu, which is the
  // pattern ORT's GeluFusion recognizes and turns into one Gelu kernel when the session optimizes.
  const sqrt2 = cachedConst(ctx, "gelu_sqrt2", () => g.scalar("gelu_sqrt2", Math.SQRT2));
  const one = cachedConst(ctx, "one", () => g.scalar("one", 1));
  const half = cachedConst(ctx, "half", () => g.scalar("half", 0.5));
  const erf = g.node("Erf", [g.node("Div", [x, sqrt2], { name: `${name}/div_sqrt2` })], { name: `${name}/erf` });
  const t = g.node("Add", [erf, one], { name: `${name}/erf_plus_1` });
  return g.node("Mul", [g.node("Mul", [x, half], { name: `${name}/half_x` }), t], { name });
}

export function emitMlp(ctx: Ctx, x: string, prefix: string, width: number, inner: number, act: ClipActivation): string {
  const h = emitLinear(ctx, x, `${prefix}.fc1`, width, inner);
  const a = emitActivation(ctx, h, act, `${prefix.replace(/\./g, "/")}/act`);
  return emitLinear(ctx, a, `${prefix}.fc2`, inner, width);
}

export interface EncoderSpec {
  width: number;
  inner: number;
  heads: number;
  act: ClipActivation;
  eps: number;
  mask?: string;
}

/** Pre-LN transformer layer: x + attn(ln1(x)), then + mlp(ln2(·)). */
export function emitEncoderLayer(ctx: Ctx, x: string, prefix: string, spec: EncoderSpec): string {
  const { g } = ctx;
  const name = prefix.replace(/\./g, "/");
  const h1 = emitLayerNorm(ctx, x, `${prefix}.layer_norm1`, spec.width, spec.eps);
  const a = emitAttention(ctx, h1, `${prefix}.self_attn`, {
    width: spec.width,
    heads: spec.heads,
    ...(spec.mask ? { mask: spec.mask } : {}),
  });
  const x1 = g.node("Add", [x, a], { name: `${name}/residual1` });
  const h2 = emitLayerNorm(ctx, x1, `${prefix}.layer_norm2`, spec.width, spec.eps);
  const m = emitMlp(ctx, h2, `${prefix}.mlp`, spec.width, spec.inner, spec.act);
  return g.node("Add", [x1, m], { name: `${name}/residual2` });
}

/** A linear layer's output before its bias, and the bias, for a fused consumer that adds it (SkipLayerNormalization, BiasGelu). */
interface Unbiased {
  y: string;
  bias: string;
}

/**
 * Self-attention as one com.microsoft MultiHeadAttention on the three separate projections (no packing of
 * the checkpoint's Q/K/V weights): MHA adds the concatenated [q|k|v] bias, scales Q·Kᵀ by head_dim^-0.5
 * (the `scale` attribute, what the standard graph's Mul does), adds `mask` as its attention_bias
 * ([1, 1, seq, seq]) and merges the heads. The out projection's bias is left to the caller's SkipLayerNormalization.
 */
function emitFusedAttention(ctx: Ctx, x: string, prefix: string, spec: AttentionSpec): Unbiased {
  const { g } = ctx;
  const { width, heads } = spec;
  const name = prefix.replace(/\./g, "/");
  const proj = (p: string) => emitMatMul(ctx, x, `${prefix}.${p}`, width, width);
  const [q, k, v] = [proj("q_proj"), proj("k_proj"), proj("v_proj")];
  const qkvBias = ctx.weight(`${prefix}.q_proj.bias`, {
    shape: [width],
    concat: { names: [`${prefix}.k_proj.bias`, `${prefix}.v_proj.bias`], as: `${prefix}.qkv_proj.bias` },
  });
  const inputs = [q, k, v, qkvBias, ...(spec.mask ? ["", spec.mask] : [])];
  const attn = g.node("MultiHeadAttention", inputs, {
    domain: MS_DOMAIN,
    attrs: { num_heads: attr.int(heads), scale: attr.float((width / heads) ** -0.5) },
    name: `${name}/mha`,
  });
  return { y: emitMatMul(ctx, attn, `${prefix}.out_proj`, width, width), bias: ctx.weight(`${prefix}.out_proj.bias`, { shape: [width] }) };
}

/** The standard attention block with the out projection's bias left to the caller's SkipLayerNormalization. */
function emitUnbiasedAttention(ctx: Ctx, x: string, prefix: string, spec: AttentionSpec): Unbiased {
  const merged = emitAttentionHeads(ctx, x, prefix, spec);
  const w = spec.width;
  return { y: emitMatMul(ctx, merged, `${prefix}.out_proj`, w, w), bias: ctx.weight(`${prefix}.out_proj.bias`, { shape: [w] }) };
}

/** MLP with BiasGelu (com.microsoft, exact erf GELU of x + bias) for "gelu"; fc2's bias is left to the caller. */
function emitFusedMlp(ctx: Ctx, x: string, prefix: string, spec: EncoderSpec): Unbiased {
  const { g } = ctx;
  const name = prefix.replace(/\./g, "/");
  const b1 = ctx.weight(`${prefix}.fc1.bias`, { shape: [spec.inner] });
  const h = emitMatMul(ctx, x, `${prefix}.fc1`, spec.width, spec.inner);
  const a =
    spec.act === "gelu"
      ? g.node("BiasGelu", [h, b1], { domain: MS_DOMAIN, name: `${name}/bias_gelu` })
      : emitActivation(ctx, g.node("Add", [h, b1], { name: `${name}/fc1/add` }), spec.act, `${name}/act`);
  return {
    y: emitMatMul(ctx, a, `${prefix}.fc2`, spec.inner, spec.width),
    bias: ctx.weight(`${prefix}.fc2.bias`, { shape: [spec.width] }),
  };
}

/**
 * `layers` pre-LN encoder layers, fused (attention as MultiHeadAttention, or unfused for "fused-no-mha"): each residual sum and the layer norm after it are one
 * SkipLayerNormalization (attention + x → layer_norm2; MLP + that sum → the next layer's layer_norm1),
 * so every layer reads its normed input from the previous one's node. The last MLP's sum is a plain Add:
 * what follows it (pooling, then the final norm) is not a per-token norm of the whole sequence.
 */
function emitFusedEncoder(ctx: Ctx, x: string, prefixOf: (l: number) => string, layers: number, spec: EncoderSpec): string {
  const { g } = ctx;
  const norm = (input: Unbiased, skip: string, prefix: string) =>
    g.residualNorm(input.y, skip, {
      gamma: ctx.weight(`${prefix}.weight`, { shape: [spec.width] }),
      beta: ctx.weight(`${prefix}.bias`, { shape: [spec.width] }),
      bias: input.bias,
      epsilon: spec.eps,
      fused: true,
      name: prefix.replace(/\./g, "/"),
    });
  let h = emitLayerNorm(ctx, x, `${prefixOf(0)}.layer_norm1`, spec.width, spec.eps);
  for (let l = 0; l < layers; l++) {
    const p = prefixOf(l);
    const attn = { width: spec.width, heads: spec.heads, ...(spec.mask ? { mask: spec.mask } : {}) };
    const a =
      ctx.opts.variant === "fused-no-mha"
        ? emitUnbiasedAttention(ctx, h, `${p}.self_attn`, attn)
        : emitFusedAttention(ctx, h, `${p}.self_attn`, attn);
    const n2 = norm(a, x, `${p}.layer_norm2`);
    const m = emitFusedMlp(ctx, n2.normed, `${p}.mlp`, spec);
    if (l + 1 < layers) {
      const n1 = norm(m, n2.sum, `${prefixOf(l + 1)}.layer_norm1`);
      x = n1.sum;
      h = n1.normed;
    } else {
      const name = p.replace(/\./g, "/");
      x = g.node("Add", [n2.sum, g.node("Add", [m.y, m.bias], { name: `${name}/mlp/fc2/add` })], { name: `${name}/residual2` });
    }
  }
  return x;
}

/** The encoder stack in the variant `ctx.opts.variant` asks for. */
function emitEncoder(ctx: Ctx, x: string, prefixOf: (l: number) => string, layers: number, spec: EncoderSpec): string {
  if (ctx.opts.variant === "fused" || ctx.opts.variant === "fused-no-mha") return emitFusedEncoder(ctx, x, prefixOf, layers, spec);
  for (let l = 0; l < layers; l++) x = emitEncoderLayer(ctx, x, prefixOf(l), spec);
  return x;
}

function makeCtx(name: string, weight: WeightFn, opts: ClipGraphOptions): Ctx {
  const g = new GraphBuilder(name, opts.dtype === "fp16" ? DataType.FLOAT16 : DataType.FLOAT);
  return { g, weight: (n, req) => weight(g, n, req), opts, consts: new Map() };
}

function castOut(ctx: Ctx, x: string, name: string): string {
  return ctx.g.floatType === DataType.FLOAT16
    ? ctx.g.node("Cast", [x], { attrs: { to: attr.int(DataType.FLOAT) }, name: `${name}_fp32` })
    : x;
}

/** input_ids int64 [batch, contextLength] → text_embeds float32 [batch, projection] (unnormalized). */
export function buildTextGraph(cfg: ClipConfig, weight: WeightFn, opts: ClipGraphOptions = DEFAULT_GRAPH_OPTIONS): GraphDef {
  const ctx = makeCtx("pickrank_clip_text", weight, opts);
  const { g } = ctx;
  const t = cfg.text;
  const seq = t.max_position_embeddings;
  const D = t.hidden_size;
  const ids = g.input({ name: "input_ids", elemType: DataType.INT64, shape: ["batch", seq] });

  const tok = ctx.weight("text_model.embeddings.token_embedding.weight", { shape: [t.vocab_size, D] });
  const pos = ctx.weight("text_model.embeddings.position_embedding.weight", { shape: [seq, D] });
  const tokEmb = g.node("Gather", [tok, ids], { attrs: { axis: attr.int(0) }, name: "text/token_embeds" });
  let x = g.node("Add", [tokEmb, pos], { name: "text/embeddings" });

  const maskValues = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) maskValues[i * seq + j] = CAUSAL_MASK_VALUE;
  // MultiHeadAttention's attention_bias is 4-D (batch or 1, heads or 1, seq, seq); Add broadcasts either.
  const mask = g.floats("causal_mask", maskValues, ctx.opts.variant === "fused" ? [1, 1, seq, seq] : [seq, seq]);

  x = emitEncoder(ctx, x, (l) => `text_model.encoder.layers.${l}`, t.num_hidden_layers, {
    width: D,
    inner: t.intermediate_size,
    heads: t.num_attention_heads,
    act: t.hidden_act,
    eps: t.layer_norm_eps,
    mask,
  });

  // Pool at the end-of-text token. Like transformers: eos_token_id 2 (legacy configs) means "argmax of
  // the ids" (the CLIP tokenizer's eot 49407 is the largest id); otherwise the first position holding
  // eos_token_id. ArgMax runs on float because ORT's CPU ArgMax has no int64 kernel (ids < 2^24 are exact).
  let key: string;
  if (t.eos_token_id === 2) {
    key = g.node("Cast", [ids], { attrs: { to: attr.int(DataType.FLOAT) }, name: "text/ids_float" });
  } else {
    const eos = g.int64s("eos_token_id", [t.eos_token_id], []);
    const isEos = g.node("Equal", [ids, eos], { name: "text/is_eos" });
    key = g.node("Cast", [isEos], { attrs: { to: attr.int(DataType.FLOAT) }, name: "text/is_eos_float" });
  }
  const eosPos = g.node("ArgMax", [key], { attrs: { axis: attr.int(1), keepdims: attr.int(1) }, name: "text/eos_position" });
  // Layer norm is per token, so pooling first and normalizing one row per prompt is the same and cheaper.
  const pooled = g.node("GatherND", [x, eosPos], { attrs: { batch_dims: attr.int(1) }, name: "text/pooled" });
  const normed = emitLayerNorm(ctx, pooled, "text_model.final_layer_norm", D, t.layer_norm_eps);
  const projW = ctx.weight("text_projection.weight", { shape: [cfg.projectionDim, D], transpose: true });
  const proj = g.node("MatMul", [normed, projW], { name: "text/projection" });
  g.output(castOut(ctx, proj, "text/projection"), { name: "text_embeds", elemType: DataType.FLOAT, shape: ["batch", cfg.projectionDim] });
  return g.build();
}

/** pixel_values float32 [batch, 3, size, size] → image_embeds float32 [batch, projection] (unnormalized). */
export function buildVisionGraph(cfg: ClipConfig, weight: WeightFn, opts: ClipGraphOptions = DEFAULT_GRAPH_OPTIONS): GraphDef {
  const ctx = makeCtx("pickrank_clip_vision", weight, opts);
  const { g } = ctx;
  const v = cfg.vision;
  const D = v.hidden_size;
  const p = v.patch_size;
  const grid = v.image_size / p;
  const tokens = grid * grid + 1;
  const pixels = g.input({ name: "pixel_values", elemType: DataType.FLOAT, shape: ["batch", v.num_channels, v.image_size, v.image_size] });
  const input =
    g.floatType === DataType.FLOAT16
      ? g.node("Cast", [pixels], { attrs: { to: attr.int(DataType.FLOAT16) }, name: "vision/pixels_fp16" })
      : pixels;

  const convW = ctx.weight("vision_model.embeddings.patch_embedding.weight", { shape: [D, v.num_channels, p, p] });
  const patches = g.node("Conv", [input, convW], {
    attrs: { kernel_shape: attr.ints([p, p]), strides: attr.ints([p, p]) },
    name: "vision/patch_embed",
  });
  const flat = g.node("Reshape", [patches, g.int64s("shape_patches", [0, D, -1])], { name: "vision/patches_flat" });
  const seqFirst = g.node("Transpose", [flat], { attrs: { perm: attr.ints([0, 2, 1]) }, name: "vision/patch_tokens" });

  // Class token broadcast to the batch: Expand to [batch, 1, D], batch read from the input's shape.
  const cls = ctx.weight("vision_model.embeddings.class_embedding", { shape: [D], dims: [1, 1, D] });
  const batch = g.node("Shape", [pixels], { attrs: { start: attr.int(0), end: attr.int(1) }, name: "vision/batch" });
  const clsShape = g.node("Concat", [batch, g.int64s("shape_cls_tail", [1, D])], {
    attrs: { axis: attr.int(0) },
    name: "vision/cls_shape",
  });
  const clsB = g.node("Expand", [cls, clsShape], { name: "vision/cls_tokens" });
  const seq = g.node("Concat", [clsB, seqFirst], { attrs: { axis: attr.int(1) }, name: "vision/tokens" });
  const pos = ctx.weight("vision_model.embeddings.position_embedding.weight", { shape: [tokens, D] });
  let x = g.node("Add", [seq, pos], { name: "vision/embeddings" });
  x = emitLayerNorm(ctx, x, "vision_model.pre_layrnorm", D, v.layer_norm_eps);

  x = emitEncoder(ctx, x, (l) => `vision_model.encoder.layers.${l}`, v.num_hidden_layers, {
    width: D,
    inner: v.intermediate_size,
    heads: v.num_attention_heads,
    act: v.hidden_act,
    eps: v.layer_norm_eps,
  });

  const clsOut = g.node("Gather", [x, g.int64s("class_index", [0], [])], { attrs: { axis: attr.int(1) }, name: "vision/class_token" });
  const normed = emitLayerNorm(ctx, clsOut, "vision_model.post_layernorm", D, v.layer_norm_eps);
  const projW = ctx.weight("visual_projection.weight", { shape: [cfg.projectionDim, D], transpose: true });
  const proj = g.node("MatMul", [normed, projW], { name: "vision/projection" });
  g.output(castOut(ctx, proj, "vision/projection"), {
    name: "image_embeds",
    elemType: DataType.FLOAT,
    shape: ["batch", cfg.projectionDim],
  });
  return g.build();
}

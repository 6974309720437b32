/**
 * @pickrank/core's public API: what the CLI, the selector, the examples and a program scoring images
 * need, and nothing else. Everything below throws only `PickrankError` (from @pickrank/contract) with a
 * code from its table; each entry names the codes it throws. Internals (graph writer, protobuf,
 * safetensors reader, sessions, hub protocol) stay importable by relative path inside this package's
 * tests and benchmarks only, and may change without notice.
 *
 * PickScore, as ported (DESIGN.md "The PickScore recipe"): score_i = exp(logit_scale) · cos(text,
 * image_i), where text and image are the projected CLIP ViT-H/14 embeddings of transformers'
 * `CLIPModel.get_text_features` / `get_image_features`; prob_i = softmax of the scores over the images of
 * one prompt (scores compare images of the same prompt only).
 */

// ── Scoring
/**
 * `Scorer.create({ model, device?, batchSize?, … })` loads a converted model folder onto a device
 * (`"auto"`: CUDA → WebGPU → CPU, the reasons for each skip in `deviceReport`) and scores images against
 * prompts: `score` (input order) / `rank` (best first, rank 1..n) return `{ index, score, prob }` with
 * score = exp(logit_scale)·cos (unitless, at most exp(logit_scale), 100 for PickScore_v1) and prob = softmax
 * over the images given. Streaming pieces: `embedText(prompt)` → Float32Array[projection] (L2-normalized,
 * cached per prompt), `embedImages(images)` / `embedPixels([3·224·224 CHW float32])` → one normalized
 * Float32Array per image, `scoreEmbeddings(text, images)`; `preprocess(image, { maxPixels? })` → the
 * [3·224·224] tensor `embedPixels` takes, on the Scorer's worker threads (for callers that batch themselves). Images: a path, encoded bytes (PNG, JPEG,
 * WebP…) or raw pixels (RawImage). Throws BAD_INPUT, BAD_MODEL, BAD_TOKENIZER, BAD_IMAGE (naming the
 * image's index), DEVICE_UNAVAILABLE (a named device that cannot start), INFERENCE_FAILED, ABORTED,
 * CLOSED (after dispose()).
 */
export { Scorer } from "./scorer.ts";
/**
 * The Scorer's own arithmetic, for callers that embed images themselves (the server's batcher, the
 * selector's near-duplicate filter): `softmax(scores)` → probabilities (max-subtracted, sums to 1),
 * `rankScores(scored)` → sorted best first with rank 1..n (ties keep input order), `dot(a, b)` → the
 * dot product of two embeddings (their cosine when both are L2-normalized, as the Scorer's are).
 * Pure; `dot` throws INTERNAL for embeddings of different lengths.
 */
export { dot, rankScores, softmax } from "./scorer.ts";
/** Scorer.create's options (model folder, device, batch size, preprocessing workers, threads, text cache size). */
export type { ScorerOptions } from "./scorer.ts";
/** `{ index, score, prob }`: index into the images given, PickScore's score, softmax probability over those images. */
export type { ScoredImage } from "./scorer.ts";
/** A ScoredImage with its `rank` (1 = best). */
export type { RankedImage } from "./scorer.ts";
/**
 * `rankSettled(prompt, images)` → `{ ranked, failed }`: images that cannot be read or decoded (BAD_IMAGE,
 * NOT_FOUND, FILESYSTEM) are listed in `failed` as `{ index, error }` and the others ranked among themselves.
 */
export type { ImageFailure, SettledRanking } from "./scorer.ts";
/** `{ signal?, onProgress?(done, total) }` of every Scorer call; progress counts images after each device batch. */
export type { CallOptions } from "./scorer.ts";
/** "cpu" | "webgpu" | "cuda": where a Scorer runs; DeviceRequest adds "auto". */
export type { DeviceName, DeviceRequest } from "./runtime/ort.ts";
/** `{ requested, chosen, skipped: [{ device, reason, summary }] }`: how `auto` (or a named device) was chosen. */
export type { DeviceReport } from "./runtime/device.ts";

// ── Model download and cache
/**
 * `pullModel(opts?)` → `{ dir, manifest, cached, reused?, notes? }`: resolves a revision of
 * yuvalkirstain/PickScore_v1 (or `repo`) on the Hugging Face hub, takes files the huggingface_hub cache
 * already holds or downloads them (resumable; size and sha256 verified against the hub's metadata),
 * converts them once (fp32 or fp16) and returns the converted folder under `cacheRoot()`. A second call
 * makes no request; HF_HUB_OFFLINE makes none at all. Ports huggingface_hub's download protocol, token
 * order and cache layout. Throws BAD_INPUT, DOWNLOAD_FAILED, INTEGRITY, BAD_MODEL, ABORTED, FILESYSTEM.
 */
export { pullModel, DEFAULT_MODEL_REPO, DEFAULT_TOKENIZER_REPO } from "./hub/pull.ts";
/** pullModel's options and result. */
export type { PullOptions, PullResult } from "./hub/pull.ts";
/** One file pullModel took from the huggingface_hub cache: where from, and what was checked ("hub", "blob-name", "none"). */
export type { ReusedFile } from "./hub/download.ts";
/**
 * `cacheRoot()`: pickrank's cache folder ($PICKRANK_CACHE, else $XDG_CACHE_HOME/pickrank, else
 * ~/.cache/pickrank). `listModels(cacheDir?)` → `[{ dir, manifest }]`, the complete converted models,
 * newest first (never throws for a missing or foreign cache).
 */
export { cacheRoot, listModels } from "./hub/cache.ts";
/** The huggingface_hub cache folder pullModel looks in ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub). */
export { hfHubCacheDir } from "./hub/hf-cache.ts";
/**
 * `pruneCache({ cacheDir?, dryRun? })` → `{ removed: [{ path, bytes, kind, what }], freedBytes }`: removes
 * the downloaded checkpoints of converted models and leftovers of interrupted conversions, under the
 * pulls' locks. `diskUsage(path)` → bytes (0 when missing). Throws BAD_INPUT, FILESYSTEM, ABORTED.
 */
export { pruneCache, diskUsage } from "./hub/prune.ts";
/** pruneCache's options and result. */
export type { PruneOptions, PruneResult, PrunedEntry } from "./hub/prune.ts";

// ── Conversion and model folders
/**
 * `convertModel(hfDir, { out, dtype?, tokenizerDir?, … })` → `{ dir, manifest }`: reads a transformers
 * CLIPModel folder (`config.json` + `model.safetensors`, F32/F16/BF16) and writes text.onnx, vision.onnx
 * (external data past 2 GB), the tokenizer files and pickrank.json, streaming the weights; the folder
 * appears complete or not at all. The graphs port transformers' CLIPModel (pre-LN layers, erf GELU,
 * causal text mask, pooling at the end-of-text token, projections without bias). Throws BAD_INPUT,
 * BAD_MODEL (naming the file and tensor), BAD_TOKENIZER, FILESYSTEM, CONFLICT.
 */
export { convertModel } from "./convert/convert.ts";
/** convertModel's options, progress events and result. */
export type { ConvertOptions, ConvertProgress, ConvertResult } from "./convert/convert.ts";
/** `readManifest(dir)` → ModelManifest: a converted folder's pickrank.json, validated. Throws BAD_MODEL naming the field. */
export { readManifest } from "./model/manifest.ts";
/** pickrank.json: source repo/revision/file hashes, dtype, logit_scale, dims, preprocessing, tokenizer and graph files. */
export type { ModelManifest, GraphVariantRequest } from "./model/manifest.ts";
/**
 * `graphsForDevice(manifest, device, request?)` → `{ variant, text, vision }`: the graphs a device runs (the
 * fused variant on WebGPU and CUDA when the model has it, the standard graphs on the CPU). Throws BAD_INPUT
 * for "fused" on a model without it. `CONVERT_DTYPES`, `GRAPH_VARIANTS`: what convertModel writes.
 */
export { graphsForDevice, FUSED_BY_DEVICE } from "./model/manifest.ts";
export { CONVERT_DTYPES } from "./convert/convert.ts";
export { GRAPH_VARIANTS } from "./convert/clip-graph.ts";
/** Graph dtypes ("fp32" | "fp16" | "int8") and variants ("standard" | "fused"). */
export type { GraphDtype, GraphVariant } from "./convert/clip-graph.ts";
/**
 * `verifyModel({ model, reference, prompts, images, device? })` → FidelityReport: both models' embeddings
 * of the same prompts and images compared (cosines, PickScore score error, probability error, Kendall τ of
 * each prompt's image ranking, same best image). `compareEmbeddings(ref, cand)` on embeddings already
 * computed; `kendallTau(a, b)` (τ-b). Throws what Scorer.create / embedImages throw, BAD_INPUT.
 */
export { verifyModel, compareEmbeddings, kendallTau } from "./model/verify.ts";
/** verifyModel's options and report; the embeddings compareEmbeddings takes. */
export type { VerifyOptions, FidelityReport, EmbeddingSet } from "./model/verify.ts";

// ── Tokenizer and preprocessing (the reference's, exactly)
/**
 * `ClipTokenizer.fromDir(dir)` (tokenizer.json, or vocab.json + merges.txt), `encode(text)` → 77 ids
 * (49406 … 49407, truncated and padded with 49407): identical to the CLIP fast tokenizer on every
 * reference case. `defaultTokenizerDir()`: the copy of laion/CLIP-ViT-H-14's files shipped with the
 * package. Throws BAD_TOKENIZER, BAD_INPUT.
 */
export { ClipTokenizer, defaultTokenizerDir } from "./tokenizer/clip-tokenizer.ts";
/**
 * `scoringPrompt(prompt)` → the prompt with A1111 / ComfyUI / dynamic-prompts syntax removed (weights,
 * `<lora:…>`, prompt editing, BREAK/AND …): what PickScore reads by default. `resolveScorePrompt(req)` →
 * `{text, source, tokens?, warnings}`: that text, the caller's, or the raw prompt, with the warning
 * that CLIP reads 75 content tokens (`CLIP_CONTENT_TOKENS`). Throws BAD_INPUT.
 */
/**
 * Rank correlations with ties handled: `spearman(a, b)` (average ranks), `kendall(a, b)` (τ-b), both
 * null where undefined (fewer than 2 items, a constant list); `averageRanks(xs)`. BAD_INPUT for lists
 * of different lengths.
 */
export { averageRanks, kendall, spearman } from "./stats/rank-stats.ts";
export { scoringPrompt } from "./prompt/prompt-syntax.ts";
export { CLIP_CONTENT_TOKENS, resolveScorePrompt, type ScorePrompt, type ScorePromptRequest } from "./prompt/score-prompt.ts";
/**
 * `preprocessImage(image, settings?)` → Float32Array [3, 224, 224] CHW: transformers'
 * CLIPImageProcessor (RGB, shortest edge 224 by the uint8 antialiased bicubic, center crop, ×1/255,
 * CLIP mean/std), bit-exact on the reference images. `CLIP_PREPROCESS`: those settings. Throws
 * BAD_IMAGE, BAD_INPUT.
 */
export { preprocessImage, CLIP_PREPROCESS } from "./preprocess/image.ts";
/**
 * `decodeImage(image, maxPixels?)` → `{ data, width, height, channels }`: interleaved uint8 pixels after
 * EXIF orientation, the pixel limit checked from the header before decoding (default 64 megapixels).
 * Throws BAD_IMAGE (naming the limit and --max-pixels when it is passed), NOT_FOUND, BAD_INPUT.
 */
export { decodeImage } from "./preprocess/image.ts";
/** decodeImage's result. */
export type { DecodedImage } from "./preprocess/image.ts";
/** An image as a path, encoded bytes, or `{ data, width, height, channels }` raw pixels (RawImage); preprocessing settings. */
export type { ImageInput, RawImage, PreprocessSettings } from "./preprocess/image.ts";

/**
 * The PickScore scorer: load a converted model folder once, then score images against prompts.
 *
 *   score_i = exp(logit_scale) · cos(text, image_i);  prob_i = softmax over one prompt's candidates
 *
 * Scores compare images of the same prompt only. Text embeddings are cached per prompt; images are
 * preprocessed (sharp, off the main thread for decoding) while the previous batch runs on the device.
 */
import path from "node:path";
import { PickrankError, invalidParameter, throwIfAborted, toPickrankError } from "@pickrank/contract";
import { graphsForDevice, readManifest, type GraphVariantRequest, type ModelManifest } from "./model/manifest.ts";
import { preprocessImage, type ImageInput, type PreprocessSettings } from "./preprocess/image.ts";
import { defaultPreprocessWorkers, PreprocessPool } from "./preprocess/worker-pool.ts";
import { describeDeviceReport, openOnDevice, parseDeviceRequest, type DeviceReport } from "./runtime/device.ts";
import { openSession, type DeviceName, type DeviceRequest, type GraphSession } from "./runtime/ort.ts";
import { ClipTokenizer } from "./tokenizer/clip-tokenizer.ts";

export type { DeviceName, DeviceRequest } from "./runtime/ort.ts";
export type { DeviceReport } from "./runtime/device.ts";

/**
 * Options of Scorer.create: the converted model folder, the device ("auto" by default: cuda, then
 * webgpu, then cpu), the vision batch size (images per run, default 8), preprocessing parallelism, CPU
 * threads, the text-embedding cache size (prompts, default 1024) and the decode limit (pixels).
 * Invalid values throw BAD_INPUT.
 */
export interface ScorerOptions {
  /** A converted model folder (holds pickrank.json). */
  model: string;
  device?: DeviceRequest;
  /** Images per vision-graph run. Default 8. */
  batchSize?: number;
  /** Images decoded and resized at once, ahead of the device. Default max(4, batchSize, 2 × workers). */
  preprocessConcurrency?: number;
  /**
   * Worker threads for decoding and resizing images; 0 runs them on the main thread.
   * Default: one per core, at most 8.
   */
  preprocessWorkers?: number;
  /** CPU provider threads. */
  threads?: number;
  /**
   * CPU provider: pack the MatMul weights at load (true, the default: the fastest runs, for servers and
   * many images) or as each run needs them (false: ready in seconds, each run ≈1.36× longer; for a
   * one-shot ranking of a few images). See LocalSessionOptions.prepackWeights for the figures.
   */
  prepackWeights?: boolean;
  /**
   * Graph variant: "auto" (default) runs the fused graphs on CUDA and WebGPU when the model has them and the
   * standard ones on the CPU (graphsForDevice, FUSED_BY_DEVICE); a variant's name forces it (BAD_INPUT when absent).
   */
  graph?: GraphVariantRequest;
  /** Prompts whose text embedding is kept. Default 1024. */
  textCacheSize?: number;
  /**
   * Largest width×height of an image to decode, checked from its header (BAD_IMAGE above it).
   * Default `DEFAULT_MAX_PIXELS` (178,956,970, PIL's DecompressionBombError bound); the CLI's `--max-pixels`.
   */
  maxPixels?: number;
}

/**
 * One image's PickScore: `index` is its 0-based position in the input, `score` is
 * exp(logit_scale) · cos(text, image), `prob` the softmax of the scores over the images of one call.
 */
export interface ScoredImage {
  index: number;
  score: number;
  prob: number;
}

/** A ScoredImage with its 1-based `rank` (1 = highest score; ties keep input order). */
export interface RankedImage extends ScoredImage {
  rank: number;
}

/** An image that could not be scored: its input position and why (BAD_IMAGE, NOT_FOUND or FILESYSTEM). */
export interface ImageFailure {
  index: number;
  error: PickrankError;
}

/** `rankSettled`'s result: the images scored (ranked among themselves) and the ones that failed. */
export interface SettledRanking {
  ranked: RankedImage[];
  failed: ImageFailure[];
}

/** Error codes that belong to one image (its file or bytes), not to the scorer: settled per image. */
const PER_IMAGE_CODES: ReadonlySet<string> = new Set(["BAD_IMAGE", "NOT_FOUND", "FILESYSTEM"]);

/**
 * Per-call options of the Scorer's image methods: an abort signal (ABORTED when it fires) and a
 * progress callback told the images embedded so far after each device batch.
 */
export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** Images embedded so far, after each device batch (for progress bars over many images). */
  onProgress?: ((done: number, total: number) => void) | undefined;
}

/**
 * The PickScore scorer, a port of the reference's transformers CLIPModel scoring
 * (`logit_scale.exp() * text_embeds @ image_embeds.T`, softmax over the images): the ONNX text and
 * vision graphs of a converted model folder, its CLIP tokenizer (77 ids) and its CLIPImageProcessor
 * preprocessing ([3,224,224] CHW float32 per image). Embeddings are L2-normalized Float32Arrays of
 * length manifest.dims.projection. Build with Scorer.create (BAD_INPUT, NOT_FOUND, BAD_MODEL,
 * BAD_TOKENIZER, DEVICE_UNAVAILABLE); image errors are BAD_IMAGE / NOT_FOUND / FILESYSTEM, graph
 * failures INFERENCE_FAILED, use after dispose() CLOSED.
 */
export class Scorer {
  readonly device: DeviceName;
  readonly deviceReport: DeviceReport;
  readonly modelDir: string;
  readonly manifest: ModelManifest;
  /** Raw logit scale as stored in the weights; scores use exp(logitScale). */
  readonly logitScale: number;
  readonly batchSize: number;
  /** The graph variant the sessions run ("fused" on WebGPU/CUDA when the model has it, see ScorerOptions.graph). */
  readonly graphVariant: "standard" | "fused" | "fused-no-mha";

  readonly #text: GraphSession;
  readonly #vision: GraphSession;
  readonly #tokenizer: ClipTokenizer;
  readonly #preprocess: PreprocessSettings;
  readonly #concurrency: number;
  readonly #textCache = new Map<string, Promise<Float32Array>>();
  readonly #textCacheSize: number;
  readonly #pool: PreprocessPool | undefined;
  #disposed = false;

  private constructor(init: {
    modelDir: string;
    manifest: ModelManifest;
    tokenizer: ClipTokenizer;
    text: GraphSession;
    vision: GraphSession;
    graphVariant: "standard" | "fused" | "fused-no-mha";
    report: DeviceReport;
    batchSize: number;
    concurrency: number;
    textCacheSize: number;
    workers: number;
    maxPixels: number | undefined;
  }) {
    this.modelDir = init.modelDir;
    this.manifest = init.manifest;
    this.logitScale = init.manifest.logitScale;
    this.#tokenizer = init.tokenizer;
    this.#text = init.text;
    this.#vision = init.vision;
    this.graphVariant = init.graphVariant;
    this.deviceReport = init.report;
    this.device = init.report.chosen;
    this.batchSize = init.batchSize;
    this.#concurrency = init.concurrency;
    this.#textCacheSize = init.textCacheSize;
    this.#preprocess = init.maxPixels === undefined ? init.manifest.preprocess : { ...init.manifest.preprocess, maxPixels: init.maxPixels };
    this.#pool = init.workers > 0 ? new PreprocessPool(init.workers) : undefined;
  }

  static async create(opts: ScorerOptions): Promise<Scorer> {
    if (typeof opts?.model !== "string" || opts.model === "") {
      throw invalidParameter("model", "a path to a converted model folder", opts?.model);
    }
    const device = parseDeviceRequest(opts.device ?? "auto");
    const batchSize = positiveInt("batchSize", opts.batchSize ?? 8);
    const workers = opts.preprocessWorkers ?? defaultPreprocessWorkers();
    if (!Number.isInteger(workers) || workers < 0) throw invalidParameter("preprocessWorkers", "a non-negative integer", workers);
    const concurrency = positiveInt("preprocessConcurrency", opts.preprocessConcurrency ?? Math.max(4, batchSize, 2 * workers));
    const textCacheSize = positiveInt("textCacheSize", opts.textCacheSize ?? 1024);
    if (opts.threads !== undefined) positiveInt("threads", opts.threads);
    const maxPixels = opts.maxPixels === undefined ? undefined : positiveInt("maxPixels", opts.maxPixels);
    const modelDir = path.resolve(opts.model);
    const manifest = await readManifest(modelDir);
    const tokenizer = await ClipTokenizer.fromDir(path.join(modelDir, manifest.tokenizer.dir));
    const sessionOpts = {
      ...(opts.threads === undefined ? {} : { threads: opts.threads }),
      ...(opts.prepackWeights === undefined ? {} : { prepackWeights: opts.prepackWeights }),
    };
    const graph = opts.graph ?? "auto";
    if (!["auto", "standard", "fused", "fused-no-mha"].includes(graph)) {
      throw invalidParameter("graph", '"auto", "standard", "fused" or "fused-no-mha"', graph);
    }
    const { value, report } = await openOnDevice(device, async (d) => {
      const files = graphsForDevice(manifest, d, graph);
      return { ...(await openBoth(modelDir, files, d, sessionOpts)), graphVariant: files.variant };
    });
    return new Scorer({ modelDir, manifest, tokenizer, ...value, report, batchSize, concurrency, textCacheSize, workers, maxPixels });
  }

  /** One line for logs: which device runs and why the others were skipped (`verbose`: the whole reasons). */
  describeDevice(verbose = false): string {
    return describeDeviceReport(this.deviceReport, verbose);
  }

  /**
   * CLIP tokens of `prompt` before truncation (start and end ids not counted): the text encoder reads
   * the first 75 of them, so more than 75 means the rest is cut. Throws BAD_INPUT for a non-string.
   */
  countTokens(prompt: string): number {
    return this.#tokenizer.countTokens(prompt);
  }

  /** L2-normalized text embedding of a prompt, cached. */
  embedText(prompt: string): Promise<Float32Array> {
    this.#assertOpen();
    if (typeof prompt !== "string") return Promise.reject(invalidParameter("prompt", "a string", prompt));
    const hit = this.#textCache.get(prompt);
    if (hit) {
      // Refresh recency: Map keeps insertion order, so re-inserting makes this the newest entry.
      this.#textCache.delete(prompt);
      this.#textCache.set(prompt, hit);
      return hit;
    }
    const p = this.#runText(prompt);
    this.#textCache.set(prompt, p);
    p.catch(() => this.#textCache.delete(prompt));
    while (this.#textCache.size > this.#textCacheSize) {
      const oldest = this.#textCache.keys().next().value as string;
      this.#textCache.delete(oldest);
    }
    return p;
  }

  async #runText(prompt: string): Promise<Float32Array> {
    const ids = this.#tokenizer.encode(prompt);
    const data = BigInt64Array.from(ids, (v) => BigInt(v));
    const out = await this.#text.run({ input_ids: { type: "int64", data, dims: [1, ids.length] } });
    const t = out["text_embeds"];
    if (t?.type !== "float32") throw new PickrankError("BAD_MODEL", "text graph returned no float32 text_embeds");
    return l2normalize(t.data.slice(0, this.manifest.dims.projection));
  }

  /**
   * L2-normalized image embeddings, in input order. Preprocessing runs ahead of the device by up to
   * `preprocessConcurrency` images, so decoding the next batch overlaps inference of this one.
   */
  async embedImages(images: readonly ImageInput[], opts: CallOptions = {}): Promise<Float32Array[]> {
    return (await this.#embed(images, opts, false)) as Float32Array[];
  }

  /**
   * Embeds what it can: one entry per input, the embedding or the image's own error (BAD_IMAGE,
   * NOT_FOUND, FILESYSTEM) when `settle`; other errors (device, abort) still throw. Without `settle`
   * the first image error throws, naming the image.
   */
  async #embed(images: readonly ImageInput[], opts: CallOptions, settle: boolean): Promise<(Float32Array | PickrankError)[]> {
    this.#assertOpen();
    if (!Array.isArray(images)) throw invalidParameter("images", "an array of image paths, Buffers or raw pixels", images);
    const { signal } = opts;
    throwIfAborted(signal, "scoring");
    const size = this.#preprocess.size;
    const plane = 3 * size * size;
    const pending: Promise<Float32Array>[] = new Array(images.length);
    let next = 0;
    const startOne = (): void => {
      const i = next++;
      const input = images[i] as ImageInput;
      const work = this.#pool ? this.#pool.run(input, this.#preprocess) : preprocessImage(input, this.#preprocess);
      pending[i] = work.catch((e: unknown) => {
        const err = toPickrankError(e, "BAD_IMAGE");
        throw new PickrankError(err.code, `Image ${describeInput(input, i)}: ${err.message}`, { cause: err, details: { index: i } });
      });
      // Unobserved rejections of images past an earlier failure must not crash the process.
      pending[i]!.catch(() => undefined);
    };
    const fill = (limit: number): void => {
      while (next < images.length && next < limit) startOne();
    };
    fill(this.#concurrency);
    const result: (Float32Array | PickrankError)[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const end = Math.min(images.length, start + this.batchSize);
      fill(end + this.#concurrency);
      const batch = new Float32Array((end - start) * plane);
      const errors = new Map<number, PickrankError>();
      let count = 0;
      for (let i = start; i < end; i++) {
        const px = await pending[i]!.catch((e: unknown) => {
          const err = e as PickrankError;
          if (!settle || !PER_IMAGE_CODES.has(err.code)) throw err;
          errors.set(i, err);
          return undefined;
        });
        throwIfAborted(signal, "scoring");
        if (px) batch.set(px, count++ * plane);
      }
      // Keep the decoder busy while the device runs this batch.
      fill(end + this.#concurrency + this.batchSize);
      const embeds = count > 0 ? await this.#runVision(batch.subarray(0, count * plane), count, signal) : [];
      for (let i = start, k = 0; i < end; i++) result.push(errors.get(i) ?? (embeds[k++] as Float32Array));
      throwIfAborted(signal, "scoring");
      opts.onProgress?.(end, images.length);
    }
    return result;
  }

  /**
   * Preprocesses one image exactly as `embedImages` does (on the worker pool when there is one):
   * CHW float32 [3,size,size], ready for `embedPixels`. `maxPixels` replaces the model's pixel limit
   * for this call (a server's per-image limit). Throws BAD_IMAGE, NOT_FOUND or BAD_INPUT.
   */
  preprocess(input: ImageInput, opts: { maxPixels?: number } = {}): Promise<Float32Array> {
    this.#assertOpen();
    const s = opts.maxPixels === undefined ? this.#preprocess : { ...this.#preprocess, maxPixels: opts.maxPixels };
    return this.#pool ? this.#pool.run(input, s) : preprocessImage(input, s);
  }

  /**
   * L2-normalized embeddings of already preprocessed images (CHW float32 [3,size,size] each, as
   * `preprocessImage` returns), batched by `batchSize`.
   */
  async embedPixels(pixels: readonly Float32Array[], opts: CallOptions = {}): Promise<Float32Array[]> {
    this.#assertOpen();
    const size = this.#preprocess.size;
    const plane = 3 * size * size;
    const result: Float32Array[] = [];
    for (let start = 0; start < pixels.length; start += this.batchSize) {
      throwIfAborted(opts.signal, "scoring");
      const chunk = pixels.slice(start, start + this.batchSize);
      const batch = new Float32Array(chunk.length * plane);
      chunk.forEach((px, i) => {
        if (px.length !== plane)
          throw invalidParameter(`pixels[${start + i}]`, `Float32Array of length ${plane} ([3,${size},${size}])`, px.length);
        batch.set(px, i * plane);
      });
      result.push(...(await this.#runVision(batch, chunk.length, opts.signal)));
      opts.onProgress?.(start + chunk.length, pixels.length);
    }
    return result;
  }

  async #runVision(batch: Float32Array, count: number, signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const size = this.#preprocess.size;
    const feeds = { pixel_values: { type: "float32" as const, data: batch, dims: [count, 3, size, size] } };
    const out = await this.#vision.run(feeds, { signal });
    const emb = out["image_embeds"];
    if (emb?.type !== "float32") throw new PickrankError("BAD_MODEL", "vision graph returned no float32 image_embeds");
    const dim = this.manifest.dims.projection;
    const result: Float32Array[] = [];
    for (let b = 0; b < count; b++) result.push(l2normalize(emb.data.slice(b * dim, (b + 1) * dim)));
    return result;
  }

  /** PickScore scores and the softmax over these candidates, from normalized embeddings. */
  scoreEmbeddings(text: Float32Array, images: readonly Float32Array[]): { score: number; prob: number }[] {
    const scale = Math.exp(this.logitScale);
    const scores = images.map((img) => scale * dot(text, img));
    const probs = softmax(scores);
    return scores.map((score, i) => ({ score, prob: probs[i]! }));
  }

  /** Scores in input order. */
  async score(prompt: string, images: readonly ImageInput[], opts: CallOptions = {}): Promise<ScoredImage[]> {
    if (!Array.isArray(images) || images.length === 0) {
      throw invalidParameter("images", "a non-empty array of image paths, Buffers or raw pixels", images);
    }
    const [text, embeds] = await Promise.all([this.embedText(prompt), this.embedImages(images, opts)]);
    return this.scoreEmbeddings(text, embeds).map((s, index) => ({ index, ...s }));
  }

  /** Scores sorted best first, rank 1 … n (ties keep input order). */
  async rank(prompt: string, images: readonly ImageInput[], opts: CallOptions = {}): Promise<RankedImage[]> {
    return rankScores(await this.score(prompt, images, opts));
  }

  /**
   * Like `rank`, but an image that cannot be read (BAD_IMAGE, NOT_FOUND, FILESYSTEM) is listed in
   * `failed` instead of stopping the others; probabilities are the softmax over the images scored.
   * Other failures (device, model, abort) still throw. `index` is always the position in `images`.
   */
  async rankSettled(prompt: string, images: readonly ImageInput[], opts: CallOptions = {}): Promise<SettledRanking> {
    if (!Array.isArray(images) || images.length === 0) {
      throw invalidParameter("images", "a non-empty array of image paths, Buffers or raw pixels", images);
    }
    const [text, embeds] = await Promise.all([this.embedText(prompt), this.#embed(images, opts, true)]);
    const failed: ImageFailure[] = [];
    const ok: { index: number; embed: Float32Array }[] = [];
    embeds.forEach((e, index) => (e instanceof PickrankError ? failed.push({ index, error: e }) : ok.push({ index, embed: e })));
    const scored = this.scoreEmbeddings(
      text,
      ok.map((o) => o.embed),
    ).map((s, k) => ({ index: ok[k]!.index, ...s }));
    return { ranked: rankScores(scored), failed };
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#textCache.clear();
    await Promise.all([this.#text.release(), this.#vision.release(), this.#pool?.close()]);
  }

  #assertOpen(): void {
    if (this.#disposed) throw new PickrankError("CLOSED", "This Scorer was disposed; create a new one with Scorer.create()");
  }
}

/**
 * Opens the text and vision graphs (`graphs`: the files of the variant chosen for the device) on worker threads. On the CPU each gets a thread of its own and they
 * load at once (most of a load is single-threaded parsing and weight packing); GPU sessions share the
 * process's GPU thread, opened one after the other (two WebGPU sessions on two threads crash Dawn). When one
 * fails, the other is released and the failure thrown (the vision graph's first, the larger one).
 */
async function openBoth(
  modelDir: string,
  graphs: { text: string; vision: string },
  device: DeviceName,
  opts: { threads?: number; prepackWeights?: boolean },
): Promise<{ text: GraphSession; vision: GraphSession }> {
  const textFile = path.join(modelDir, graphs.text);
  const visionFile = path.join(modelDir, graphs.vision);
  if (device !== "cpu") {
    // Both on the process's GPU thread (openSession's default for a GPU), one after the other.
    const vision = await openSession(visionFile, device, opts);
    try {
      return { text: await openSession(textFile, device, opts), vision };
    } catch (e) {
      await vision.release();
      throw e;
    }
  }
  const [text, vision] = await Promise.allSettled([openSession(textFile, device, opts), openSession(visionFile, device, opts)]);
  if (text.status === "fulfilled" && vision.status === "fulfilled") return { text: text.value, vision: vision.value };
  await Promise.all([text, vision].map((r) => (r.status === "fulfilled" ? r.value.release() : undefined)));
  throw vision.status === "rejected" ? vision.reason : (text as PromiseRejectedResult).reason;
}

/** Sorts scored items best first (highest score; ties by lower index) and numbers them rank 1 … n. */
export function rankScores<T extends ScoredImage>(scored: readonly T[]): (T & { rank: number })[] {
  return [...scored].sort((a, b) => b.score - a.score || a.index - b.index).map((s, i) => ({ ...s, rank: i + 1 }));
}

export function l2normalize(v: Float32Array): Float32Array {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!;
  const inv = sum > 0 ? 1 / Math.sqrt(sum) : 0;
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv;
  return out;
}

/**
 * Dot product of two equal-length vectors (the cosine when both are L2-normalized).
 * @throws INTERNAL when the lengths differ.
 */
export function dot(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new PickrankError("INTERNAL", `Embedding sizes differ: ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Softmax of the values (max subtracted first for stability); [] for []. The probabilities sum to 1. */
export function softmax(xs: readonly number[]): number[] {
  if (xs.length === 0) return [];
  const max = Math.max(...xs);
  const e = xs.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) throw invalidParameter(name, "positive integer", v);
  return v;
}

function describeInput(input: ImageInput, i: number): string {
  if (typeof input === "string") return `#${i} (${input})`;
  return `#${i}`;
}

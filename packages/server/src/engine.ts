/**
 * What the routes call: one warm Scorer, the dynamic batcher in front of its vision graph, and a
 * bounded LRU of prompt embeddings in front of its text graph (concurrent asks for one prompt share
 * one text run). Numbers are the Scorer's own: `scoreEmbeddings`, `softmax`, `rankScores`.
 */
import { PickrankError, isPickrankError, toPickrankError } from "@pickrank/contract";
import { rankScores, softmax, type ImageInput, type Scorer } from "@pickrank/core";
import { LRUCache } from "lru-cache";
import { Batcher, type RunInfo } from "./batcher.ts";
import type { ServerMetrics } from "./metrics.ts";

/** Where one request's time went (ms) and how many vision runs carried its images. */
export interface Timings {
  preprocessMs: number;
  queuedMs: number;
  inferenceMs: number;
  totalMs: number;
  batches: number;
}

export interface RankedResult {
  index: number;
  score: number;
  prob: number;
  rank: number;
}

/** An item of /v1/score after its image reference was resolved (or failed to resolve). */
export interface ScoreJob {
  prompt: string;
  image: ImageInput | PickrankError;
  group?: string | number | undefined;
}

/**
 * One /v1/score item's outcome, by its 0-based index: its score (with prob and rank within its group
 * when grouped) or its error.
 */
export type ScoreOutcome =
  | { index: number; score: number; group?: string | number; prob?: number; rank?: number }
  | { index: number; group?: string | number; error: PickrankError };

export interface EngineOptions {
  maxBatch: number;
  maxWaitMs: number;
  maxPixels: number;
  textCacheSize: number;
}

/**
 * What the routes call: one warm Scorer, the dynamic Batcher in front of its vision graph and an LRU of
 * prompt embeddings in front of its text graph. Scores are the Scorer's (exp(logit_scale) · cosine,
 * softmax, 1-based ranks). Errors: PAYLOAD_TOO_LARGE (an image over maxPixels), BAD_IMAGE, ABORTED,
 * CLOSED after close(), the device's INFERENCE_FAILED.
 */
export class Engine {
  readonly scorer: Scorer;
  readonly #batcher: Batcher;
  readonly #text: LRUCache<string, Float32Array>;
  readonly #opts: EngineOptions;
  readonly #metrics: ServerMetrics;

  constructor(scorer: Scorer, opts: EngineOptions, metrics: ServerMetrics) {
    this.scorer = scorer;
    this.#opts = opts;
    this.#metrics = metrics;
    this.#batcher = new Batcher((px) => scorer.embedPixels(px), {
      maxBatch: opts.maxBatch,
      maxWaitMs: opts.maxWaitMs,
      onRun: (run) => metrics.observeRun(run.size),
    });
    this.#text = new LRUCache<string, Float32Array>({
      max: opts.textCacheSize,
      fetchMethod: async (prompt) => {
        metrics.textEmbeddings.inc({ source: "computed" });
        return scorer.embedText(prompt);
      },
    });
  }

  /** Images waiting for a vision run. */
  get queuedImages(): number {
    return this.#batcher.depth;
  }

  /** The normalized text embedding of `prompt`, from the LRU or one text run shared by concurrent asks. */
  async embedText(prompt: string): Promise<Float32Array> {
    if (this.#text.has(prompt)) this.#metrics.textEmbeddings.inc({ source: "cache" });
    const v = await this.#text.fetch(prompt);
    if (!v) throw new PickrankError("INTERNAL", `No text embedding came back for the prompt ${JSON.stringify(prompt.slice(0, 40))}`);
    return v;
  }

  /** Preprocesses one image with the server's pixel limit; a pixel-limit failure becomes PAYLOAD_TOO_LARGE. */
  async preprocess(input: ImageInput, field: string): Promise<Float32Array> {
    try {
      return await this.scorer.preprocess(input, { maxPixels: this.#opts.maxPixels });
    } catch (e) {
      const err = toPickrankError(e, "BAD_IMAGE");
      const code = err.code === "BAD_IMAGE" && err.details && "maxPixels" in err.details ? "PAYLOAD_TOO_LARGE" : err.code;
      throw new PickrankError(code, `${field}: ${err.message}`, { cause: err, details: { ...err.details, parameter: field } });
    }
  }

  /**
   * Scores images against one prompt, best first: the numbers of `Scorer#rank` on the same pixels.
   * Throws the first failing image's error (BAD_IMAGE, PAYLOAD_TOO_LARGE …, `details.index` set), or
   * ABORTED / CLOSED / INFERENCE_FAILED.
   */
  async rank(
    prompt: string,
    images: readonly ImageInput[],
    signal: AbortSignal,
    t0: number,
  ): Promise<{ results: RankedResult[]; timings: Timings }> {
    const text = this.embedText(prompt);
    text.catch(() => undefined);
    const pre = performance.now();
    const settled = await Promise.allSettled(images.map((img, i) => this.preprocess(img, `images[${i}]`)));
    const ready = performance.now();
    const failed = settled.findIndex((s) => s.status === "rejected");
    if (failed >= 0) throw withIndex((settled[failed] as PromiseRejectedResult).reason, failed);
    const pixels = settled.map((s) => (s as PromiseFulfilledResult<Float32Array>).value);
    const { embeds, runs } = await this.#batcher.submit(pixels, signal);
    const scored = this.scorer.scoreEmbeddings(await text, embeds).map((s, index) => ({ index, ...s }));
    return { results: rankScores(scored), timings: timings(t0, pre, ready, runs) };
  }

  /**
   * Scores (prompt, image) items in order. A failing item fails only itself; grouped items get `prob`
   * and `rank` from the softmax over the group's surviving items. Each distinct prompt is embedded once.
   */
  async score(jobs: readonly ScoreJob[], signal: AbortSignal, t0: number): Promise<{ results: ScoreOutcome[]; timings: Timings }> {
    const prompts = [...new Set(jobs.map((j) => j.prompt))];
    const texts = new Map(
      prompts.map((p) => [
        p,
        this.embedText(p).then(
          (v) => ({ v }),
          (e: unknown) => ({ e: toPickrankError(e, "INFERENCE_FAILED") }),
        ),
      ]),
    );
    const pre = performance.now();
    const prepared = await Promise.all(
      jobs.map((j, i) =>
        j.image instanceof PickrankError
          ? { e: j.image }
          : this.preprocess(j.image, `items[${i}].image`).then(
              (px) => ({ px }),
              (e: unknown) => ({ e: toPickrankError(e, "BAD_IMAGE") }),
            ),
      ),
    );
    const ready = performance.now();
    const ok = prepared.flatMap((p, i) => ("px" in p ? [i] : []));
    const { embeds, runs } = await this.#batcher.submit(
      ok.map((i) => (prepared[i] as { px: Float32Array }).px),
      signal,
    );
    const embedOf = new Map(ok.map((i, k) => [i, embeds[k]!]));
    const results: ScoreOutcome[] = [];
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      const g = job.group === undefined ? {} : { group: job.group };
      const p = prepared[i]!;
      const text = await texts.get(job.prompt)!;
      if ("e" in p) results.push({ index: i, ...g, error: p.e });
      else if ("e" in text) results.push({ index: i, ...g, error: text.e });
      else results.push({ index: i, ...g, score: this.scorer.scoreEmbeddings(text.v, [embedOf.get(i)!])[0]!.score });
    }
    applyGroups(results);
    return { results, timings: timings(t0, pre, ready, runs) };
  }

  /** Rejects queued images with CLOSED (runs on the device finish). */
  close(): void {
    this.#batcher.close();
  }
}

/** prob and rank within each group, over the group's items that have a score. */
function applyGroups(results: ScoreOutcome[]): void {
  const groups = new Map<string, { index: number; score: number }[]>();
  for (const r of results) {
    if (r.group === undefined || !("score" in r)) continue;
    const key = `${typeof r.group}:${r.group}`;
    const list = groups.get(key) ?? [];
    list.push({ index: r.index, score: r.score });
    groups.set(key, list);
  }
  for (const members of groups.values()) {
    const probs = softmax(members.map((m) => m.score));
    const ranked = rankScores(members.map((m, k) => ({ index: k, score: m.score, prob: probs[k]! })));
    for (const r of ranked) {
      const target = results[members[r.index]!.index]! as { prob?: number; rank?: number };
      target.prob = r.prob;
      target.rank = r.rank;
    }
  }
}

function withIndex(e: unknown, index: number): PickrankError {
  const err = isPickrankError(e) ? e : toPickrankError(e, "BAD_IMAGE");
  return new PickrankError(err.code, err.message, { cause: err.cause ?? err, details: { ...err.details, index } });
}

function timings(t0: number, pre: number, ready: number, runs: readonly RunInfo[]): Timings {
  const now = performance.now();
  const inferenceMs = runs.reduce((s, r) => s + r.ms, 0);
  const lastEnd = runs.reduce((m, r) => Math.max(m, r.startedAt + r.ms), ready);
  const round = (x: number): number => Math.round(x * 100) / 100;
  return {
    preprocessMs: round(ready - pre),
    queuedMs: round(Math.max(0, lastEnd - ready - inferenceMs)),
    inferenceMs: round(inferenceMs),
    totalMs: round(now - t0),
    batches: runs.length,
  };
}

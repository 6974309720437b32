/**
 * Dynamic batching: preprocessed images of concurrent requests share one vision run.
 *
 * While the device is idle, the first image waits at most `maxWaitMs` for others (a full batch of
 * `maxBatch` runs at once). When a run ends, the same rule applies to what queued meanwhile. One run
 * at a time: the device is the bottleneck, and ONNX Runtime parallelizes inside a run.
 */
import { PickrankError, abortedError } from "@pickrank/contract";

/** One vision run, as a request's timings see it. */
export interface RunInfo {
  id: number;
  /** performance.now() when the run started, ms. */
  startedAt: number;
  /** Duration of the run, ms. */
  ms: number;
  /** Images in the run. */
  size: number;
}

/** Options of Batcher: the most images per vision run, the batching window in ms, and a callback after each run. */
export interface BatcherOptions {
  maxBatch: number;
  maxWaitMs: number;
  /** Called after every run (metrics). */
  onRun?: (run: RunInfo) => void;
}

/** Embeds one batch of CHW float32 tensors, in order (Scorer#embedPixels). */
export type RunBatch = (pixels: Float32Array[]) => Promise<Float32Array[]>;

interface Pending {
  pixels: Float32Array;
  signal: AbortSignal | undefined;
  resolve: (v: { embed: Float32Array; run: RunInfo }) => void;
  reject: (e: unknown) => void;
}

/**
 * Dynamic batching: preprocessed images ([3,size,size] CHW float32) of concurrent requests share one
 * vision run of at most maxBatch images; while the device is idle the first image waits at most
 * maxWaitMs (ms) for others. One run at a time. Rejects with ABORTED, CLOSED or the run's error.
 */
export class Batcher {
  readonly #run: RunBatch;
  readonly #opts: BatcherOptions;
  #queue: Pending[] = [];
  #running = false;
  #timer: NodeJS.Timeout | undefined;
  #nextRunId = 1;
  #closed = false;

  constructor(run: RunBatch, opts: BatcherOptions) {
    this.#run = run;
    this.#opts = opts;
  }

  /** Images waiting for a vision run. */
  get depth(): number {
    return this.#queue.length;
  }

  /**
   * Queues a request's images; resolves with their embeddings in order and the runs that carried
   * them. Rejects with ABORTED when `signal` fires before its images ran, CLOSED after close(), or
   * the run's error (INFERENCE_FAILED …) for every image of a failed run.
   */
  async submit(pixels: readonly Float32Array[], signal?: AbortSignal): Promise<{ embeds: Float32Array[]; runs: RunInfo[] }> {
    if (this.#closed)
      throw new PickrankError("CLOSED", "The server is shutting down and takes no new work", { details: { what: "server" } });
    if (pixels.length === 0) return { embeds: [], runs: [] };
    const done = pixels.map(
      (px) =>
        new Promise<{ embed: Float32Array; run: RunInfo }>((resolve, reject) => {
          this.#queue.push({ pixels: px, signal, resolve, reject });
        }),
    );
    // One failure rejects the request; the others must not surface as unhandled rejections.
    for (const d of done) d.catch(() => undefined);
    this.#schedule();
    const results = await Promise.all(done);
    const runs = [...new Map(results.map((r) => [r.run.id, r.run])).values()];
    return { embeds: results.map((r) => r.embed), runs };
  }

  /** Rejects everything still queued with CLOSED; a run already on the device finishes. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    const err = new PickrankError("CLOSED", "The server shut down before this image ran", { details: { what: "server" } });
    for (const p of this.#queue.splice(0)) p.reject(err);
  }

  #schedule(): void {
    if (this.#running || this.#queue.length === 0) return;
    if (this.#queue.length >= this.#opts.maxBatch || this.#opts.maxWaitMs === 0) {
      this.#startRun();
      return;
    }
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#startRun();
    }, this.#opts.maxWaitMs);
  }

  #startRun(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#running) return;
    const batch: Pending[] = [];
    while (batch.length < this.#opts.maxBatch && this.#queue.length > 0) {
      const p = this.#queue.shift()!;
      if (p.signal?.aborted) p.reject(abortedError("scoring", p.signal.reason));
      else batch.push(p);
    }
    if (batch.length === 0) return;
    this.#running = true;
    void this.#execute(batch).finally(() => {
      this.#running = false;
      // A full batch runs now; a partial one gets the idle device's window. The graph runs on the
      // session's own thread, so while it runs requests are read and preprocessed images queue here:
      // what queued during a run goes into the next one together.
      this.#schedule();
    });
  }

  async #execute(batch: Pending[]): Promise<void> {
    const startedAt = performance.now();
    try {
      const embeds = await this.#run(batch.map((p) => p.pixels));
      const run: RunInfo = { id: this.#nextRunId++, startedAt, ms: performance.now() - startedAt, size: batch.length };
      this.#opts.onRun?.(run);
      batch.forEach((p, i) => p.resolve({ embed: embeds[i]!, run }));
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }
}

/**
 * `pickrank worker`: a long-running BullMQ worker bound to its own generation servers (a Backend: one
 * server or a pool, with the credentials of this machine) and its own scorer. Each job renders one
 * candidate, embeds it with PickScore's image tower and returns the image (by value, or by reference
 * in shared storage) with its embedding. Locks are renewed while a job runs; when a worker dies its
 * lock expires and BullMQ's stalled-job check gives the job to another worker (same job id: still one
 * result per seed). close() drains: no new job is taken and the running ones finish.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import path from "node:path";
import { type Backend, type Generated, PickrankError, toPickrankError, writeFileAtomic } from "@pickrank/contract";
import { type Job, UnrecoverableError, Worker } from "bullmq";
import type { RedisConnection } from "./connection.ts";
import {
  DEFAULT_QUEUE_NAME,
  encodeEmbedding,
  failureReason,
  MAX_INLINE_IMAGE_BYTES,
  modelKey,
  QUEUE_PREFIX,
  type ImagePayload,
  type RenderJobData,
  type RenderJobProgress,
  type RenderJobResult,
} from "./jobs.ts";

/** What a worker needs of the scorer (@pickrank/core's Scorer has it). */
export interface WorkerScorer {
  readonly manifest: { dtype: string; source: { files: { name: string; sha256: string }[] } };
  embedImages(images: Buffer[], o?: { signal?: AbortSignal }): Promise<Float32Array[]>;
}

/** What a worker reports as it works (the CLI prints these on stderr). */
export type WorkerEvent =
  | { type: "job-done"; jobId: string; seed: number; backend: string; renderMs: number; scoreMs: number }
  | { type: "job-failed"; jobId: string; seed: number; error: PickrankError; retry: boolean }
  | { type: "error"; message: string };

/** Settings of a render worker. */
export interface RenderWorkerOptions {
  connection: RedisConnection;
  /** BullMQ queue name (default "pickrank"); every worker of one name must render with the same configuration. */
  queueName?: string;
  backend: Backend;
  scorer: WorkerScorer;
  /** Jobs run at once (default 2). */
  concurrency?: number;
  /** Shared storage: images are written here and passed by reference (a path relative to it) instead of by value. */
  sharedDir?: string;
  /** How this worker names itself in results (default host:pid). */
  name?: string;
  /** How long a job's lock lasts without renewal (ms, default 30 000); a dead worker's jobs are retaken after it. */
  lockDurationMs?: number;
  /** How often stalled jobs are looked for (ms, default 30 000). */
  stalledIntervalMs?: number;
  /** How many times a job may stall (its worker died) before it fails (default 3). */
  maxStalledCount?: number;
  onEvent?: (e: WorkerEvent) => void;
}

/** The parent queue of the flows (one parent per prompt): workers complete a parent once its children are done. */
export function promptsQueueName(queueName: string): string {
  return `${queueName}-prompts`;
}

/** A running render worker (one BullMQ Worker for candidates, one for the prompts' parent jobs). */
export class RenderWorker {
  readonly name: string;
  readonly queueName: string;
  readonly #workers: Worker[];
  readonly #stopReconnecting: () => void;

  private constructor(name: string, queueName: string, workers: Worker[], stopReconnecting: () => void) {
    this.name = name;
    this.queueName = queueName;
    this.#workers = workers;
    this.#stopReconnecting = stopReconnecting;
  }

  /**
   * Starts taking jobs.
   * @throws BAD_INPUT for a concurrency below 1.
   */
  static start(o: RenderWorkerOptions): RenderWorker {
    const queueName = o.queueName ?? DEFAULT_QUEUE_NAME;
    const concurrency = o.concurrency ?? 2;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1)
      throw new PickrankError("BAD_INPUT", `Expected a concurrency of at least 1 but received ${concurrency}`, {
        details: { parameter: "concurrency" },
      });
    const name = o.name ?? `${hostname()}:${process.pid}`;
    const model = modelKey(o.scorer.manifest);
    let closed = false;
    // Once closed, no connection tries again (a Redis that went away would keep the process alive).
    const connection = { ...o.connection, retryStrategy: (t: number) => (closed ? null : o.connection.retryStrategy(t)) };
    const common = {
      connection,
      prefix: QUEUE_PREFIX,
      lockDuration: o.lockDurationMs ?? 30_000,
      stalledInterval: o.stalledIntervalMs ?? 30_000,
      maxStalledCount: o.maxStalledCount ?? 3,
      name,
    };
    const render = new Worker<RenderJobData, RenderJobResult>(queueName, (job, _token, signal) => processJob(o, name, model, job, signal), {
      ...common,
      concurrency,
    });
    const parents = new Worker(promptsQueueName(queueName), async (job) => ({ prompt: (job.data as { prompt?: string }).prompt ?? "" }), {
      ...common,
      concurrency: 4,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 0 },
    });
    render.on("failed", (job, err) => {
      if (!job) return;
      const e = toPickrankError(err);
      const retry = !(err instanceof UnrecoverableError) && job.attemptsMade < (job.opts.attempts ?? 1);
      o.onEvent?.({ type: "job-failed", jobId: job.id ?? "", seed: job.data.seed, error: e, retry });
    });
    for (const w of [render, parents]) w.on("error", (err) => o.onEvent?.({ type: "error", message: err.message }));
    return new RenderWorker(name, queueName, [render, parents], () => {
      closed = true;
    });
  }

  /** Resolves once both BullMQ workers are connected and waiting for jobs. */
  async ready(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.waitUntilReady()));
  }

  /**
   * Drains: takes no new job and resolves when the running ones have finished (`force`: at once,
   * leaving running jobs to be retaken by another worker once their lock expires).
   */
  async close(force = false): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.close(force)));
    this.#stopReconnecting();
  }
}

/** One job: render the candidate, embed it, hand back the image and the embedding. */
async function processJob(
  o: RenderWorkerOptions,
  name: string,
  model: string,
  job: Job<RenderJobData, RenderJobResult>,
  signal: AbortSignal | undefined,
): Promise<RenderJobResult> {
  const d = job.data;
  if (d.model !== model)
    throw new UnrecoverableError(
      failureReason(
        new PickrankError(
          "BAD_MODEL",
          `Expected the coordinator's model ${d.model} on worker ${name} but it scores with ${model}; ` +
            "give every worker and the coordinator the same --model",
        ),
      ),
    );
  try {
    const g = await renderOne(o.backend, d, job, signal);
    const progress: RenderJobProgress = { stage: "scoring" };
    await job.updateProgress(progress);
    const t = performance.now();
    const [embedding] = await o.scorer.embedImages([g.image], signal ? { signal } : {});
    if (!embedding)
      throw new PickrankError("INFERENCE_FAILED", `Expected an image embedding for seed ${d.seed} but the scorer returned none`);
    const scoreMs = performance.now() - t;
    const r: RenderJobResult = {
      seed: g.seed,
      format: g.format,
      backend: g.backend,
      worker: name,
      timings: g.timings,
      image: await imagePayload(o.sharedDir, job.id ?? "", g.format, g.image),
      embedding: encodeEmbedding(embedding),
      scoreMs,
    };
    if (g.batchIndex !== undefined) r.batchIndex = g.batchIndex;
    if (g.meta) r.meta = g.meta;
    o.onEvent?.({ type: "job-done", jobId: job.id ?? "", seed: d.seed, backend: g.backend, renderMs: g.timings.totalMs, scoreMs });
    return r;
  } catch (e) {
    const err = toPickrankError(e, "INTERNAL");
    // Retryable codes (a server down or stalled …) go back to BullMQ's retries with backoff; the others fail the job at once.
    if (err.retryable) throw new PickrankError(err.code, failureReason(err), { cause: err });
    throw new UnrecoverableError(failureReason(err));
  }
}

/** Renders the job's one candidate on the worker's backend, reporting the sampler's steps as job progress. */
async function renderOne(
  backend: Backend,
  d: RenderJobData,
  job: Job<RenderJobData, RenderJobResult>,
  signal: AbortSignal | undefined,
): Promise<Extract<Generated, { ok: true }>> {
  let last: Generated | undefined;
  let lastStep = -1;
  for await (const g of backend.generate({
    prompt: d.prompt,
    ...(d.negativePrompt !== undefined ? { negativePrompt: d.negativePrompt } : {}),
    n: 1,
    seeds: [d.seed],
    keys: ["0"],
    params: d.params,
    ...(signal ? { signal } : {}),
    onEvent: (e) => {
      if (e.type !== "progress" || e.step === lastStep) return;
      lastStep = e.step;
      const p: RenderJobProgress = { stage: "rendering", step: e.step, steps: e.steps };
      job.updateProgress(p).catch(() => {}); // progress is advisory; a lost update changes nothing
    },
  })) {
    last = g;
  }
  if (!last)
    throw new PickrankError(
      "BACKEND_PROTOCOL",
      `Expected the backend ${backend.id} to return the candidate with seed ${d.seed} but it returned nothing`,
    );
  if (!last.ok) throw last.error;
  return last;
}

/** The image by reference (written to the shared folder, named by job id) or by value (base64, up to MAX_INLINE_IMAGE_BYTES). */
async function imagePayload(sharedDir: string | undefined, jobId: string, format: string, image: Buffer): Promise<ImagePayload> {
  if (sharedDir !== undefined) {
    const file = `${jobId}.${format}`;
    await writeFileAtomic(path.join(sharedDir, file), image, "--shared-dir");
    return { by: "reference", file, sha256: createHash("sha256").update(image).digest("hex"), bytes: image.byteLength };
  }
  if (image.byteLength > MAX_INLINE_IMAGE_BYTES)
    throw new PickrankError(
      "PAYLOAD_TOO_LARGE",
      `Expected an image of at most ${MAX_INLINE_IMAGE_BYTES} bytes to pass through Redis but it has ${image.byteLength}; ` +
        "give the workers and the coordinator a shared folder (--shared-dir)",
      { details: { limit: MAX_INLINE_IMAGE_BYTES, received: image.byteLength } },
    );
  return { by: "value", base64: image.toString("base64") };
}

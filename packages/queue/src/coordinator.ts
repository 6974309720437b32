/**
 * The coordinator's side: a Backend whose generate() enqueues one BullMQ job per (prompt, seed), as a
 * flow (one parent per prompt, one child per seed), and yields each candidate when a worker has
 * rendered and embedded it. The selector runs over it unchanged — the same journal, resume, outputs
 * and result.json as a local run — and withWorkerEmbeddings() lets the selector's scorer use the
 * embeddings the workers computed instead of embedding the image again.
 *
 * Exactly one candidate per seed: job ids come from what is rendered (jobs.ts), an id that exists is
 * never added again, and a collected job is removed only after the selector has journaled it (the
 * generator resumes after its yield only then). With `plan`, the first request also enqueues the
 * later prompts of the run, so every worker has work while the selector takes prompts in order.
 */
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import {
  type Backend,
  type Candidate,
  type GenerateRequest,
  type Generated,
  type GenerationParams,
  type HealthReport,
  abortedError,
  fsError,
  nap,
  PickrankError,
  sleep,
  toPickrankError,
} from "@pickrank/contract";
import { FlowProducer, type Job, Queue, QueueEvents } from "bullmq";
import { Redis } from "ioredis";
import { type RedisConnection, redactRedisUrl } from "./connection.ts";
import {
  canonical,
  DEFAULT_QUEUE_NAME,
  decodeEmbedding,
  errorFromReason,
  QUEUE_PREFIX,
  type RenderJobData,
  type RenderJobProgress,
  type RenderJobResult,
  renderJobId,
} from "./jobs.ts";
import { promptsQueueName } from "./worker.ts";

/** Settings of the coordinator's queue backend. */
export interface QueueBackendOptions {
  connection: RedisConnection;
  /** BullMQ queue name (default "pickrank"): the workers started with the same name render the jobs. */
  queueName?: string;
  /** modelKey() of the coordinator's model; workers with another model refuse the jobs (BAD_MODEL). */
  model: string;
  /** Length of the model's image embeddings (manifest.dims.projection). */
  dims: number;
  /** The storage shared with the workers, as mounted here (images passed by reference are read from it). */
  sharedDir?: string;
  /**
   * The run's prompts, candidates per prompt and first-pass settings (the drafts' with draft-then-refine):
   * the first request with those settings enqueues every later prompt too. Requests with other settings
   * (the refined best k) are enqueued when they come.
   */
  plan?: { prompts: readonly string[]; n: number; params?: GenerationParams };
  /** Where to keep the workers' image embeddings (default: a map of its own); several queue backends may share one. */
  embeddings?: WeakMap<Buffer, Float32Array>;
  /** Largest seed (default 2^32 − 1, what every backend accepts). */
  maxSeed?: number;
  /** Tries per job before it fails (default 5, exponential backoff from 1 s). */
  attempts?: number;
  /** Seconds a finished job that nobody collected stays in Redis (default 7 days). */
  retentionS?: number;
  /** How often outstanding jobs are looked at besides the queue's events (ms, default 1000). */
  pollMs?: number;
}

type Item = { key: string; seed: number; id: string; data: RenderJobData };

/** A Backend that renders through workers on a BullMQ queue. */
export class QueueBackend implements Backend {
  readonly id: string;
  readonly kind = "queue";
  readonly maxSeed: number;
  readonly queueName: string;
  /** Image embeddings computed by the workers, by the candidate's image buffer (see withWorkerEmbeddings). */
  readonly embeddings: WeakMap<Buffer, Float32Array>;
  readonly #o: QueueBackendOptions;
  readonly #queue: Queue<RenderJobData, RenderJobResult>;
  readonly #flows: FlowProducer;
  readonly #events: QueueEvents;
  readonly #redis: Redis;
  readonly #listeners = new Map<string, { wake: () => void; progress: (p: RenderJobProgress) => void }>();
  readonly #prefetched = new Set<string>();
  #serial: Promise<unknown> = Promise.resolve();
  #closed = false;
  #workersChecked = false;

  /** Connects lazily: nothing is sent to Redis before check() or generate(). */
  constructor(o: QueueBackendOptions) {
    this.#o = o;
    this.embeddings = o.embeddings ?? new WeakMap();
    this.queueName = o.queueName ?? DEFAULT_QUEUE_NAME;
    this.maxSeed = o.maxSeed ?? 2 ** 32 - 1;
    this.id = `queue@${redactRedisUrl(o.connection.url)}#${this.queueName}`;
    // Once closed, no connection tries again (a Redis that never answered would keep the process alive).
    const connection = { ...o.connection, retryStrategy: (t: number) => (this.#closed ? null : o.connection.retryStrategy(t)) };
    const conn = { connection, prefix: QUEUE_PREFIX };
    this.#queue = new Queue(this.queueName, conn);
    this.#flows = new FlowProducer(conn);
    this.#events = new QueueEvents(this.queueName, conn);
    const { url, ...rest } = connection;
    this.#redis = new Redis(url, { ...rest, lazyConnect: true });
    this.#events.on("completed", ({ jobId }) => this.#listeners.get(jobId)?.wake());
    this.#events.on("failed", ({ jobId }) => this.#listeners.get(jobId)?.wake());
    this.#events.on("progress", ({ jobId, data }) => this.#listeners.get(jobId)?.progress(data as RenderJobProgress));
    // Each reconnects by itself (a Redis restart); check() reports an unreachable Redis.
    this.#queue.on("error", () => {});
    this.#flows.on("error", () => {});
    this.#events.on("error", () => {});
    this.#redis.on("error", () => {});
  }

  /** The queue and its settings: a resumed run must use the same queue (its workers' configuration). */
  fingerprint(): Record<string, unknown> {
    return { kind: "queue", queue: this.queueName };
  }

  /** Redis reachable, and how many workers listen (ok: false when Redis does not answer within 10 s). */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    const base = { backend: this.id, kind: this.kind };
    try {
      const ask = (async () => {
        await this.#queue.waitUntilReady();
        const counts = await this.#queue.getJobCounts("active", "waiting");
        return { running: counts["active"] ?? 0, pending: counts["waiting"] ?? 0 };
      })();
      // The 10 s timer is stopped once Redis answered (it held the process and a listener on the signal).
      const stop = new AbortController();
      const timeout = sleep(10_000, signal ? AbortSignal.any([signal, stop.signal]) : stop.signal).then(() => {
        throw new PickrankError("BACKEND_UNREACHABLE", `Expected Redis at ${redactRedisUrl(this.#o.connection.url)} to answer within 10 s`);
      });
      const queue = await Promise.race([ask, timeout]).finally(() => stop.abort());
      return { ok: true, ...base, queue };
    } catch (e) {
      return { ok: false, ...base, error: toPickrankError(e, "BACKEND_UNREACHABLE").toJSON() };
    }
  }

  /**
   * Once per backend: a warning event when no worker listens on the queue, since its jobs then wait
   * until one starts (a configuration with no worker looked like a hang). Workers are counted by
   * BullMQ's client names (CLIENT LIST); where Redis refuses that command, nothing is said.
   */
  async #warnWithoutWorkers(req: GenerateRequest): Promise<void> {
    if (this.#workersChecked) return;
    this.#workersChecked = true;
    const workers = await this.#queue.getWorkersCount().catch(() => undefined);
    if (workers !== 0) return;
    req.onEvent?.({
      type: "warning",
      backend: this.id,
      message:
        `no worker listens on queue "${this.queueName}" yet: its jobs wait until one starts ` +
        `(pickrank worker --queue <redis url> --queue-name ${this.queueName} …)`,
    });
  }

  /**
   * Enqueues the request's candidates (those not already queued or done) and yields each as a worker
   * finishes it; a job that failed all its tries is yielded as a FailedCandidate with the worker's error.
   * @throws ABORTED when the signal fires (the jobs stay queued: a resumed run collects them).
   */
  async *generate(req: GenerateRequest): AsyncIterable<Generated> {
    const seeds = req.seeds ?? Array.from({ length: req.n }, (_, i) => (req.seed ?? 0) + i);
    const keys = req.keys ?? seeds.map((_, i) => String(i));
    const params = req.params ?? {};
    const items = seeds.map((seed, i) => this.#item(req.prompt, req.negativePrompt, seed, params, keys[i]!));
    await this.#enqueue(req.prompt, items, true);
    await this.#warnWithoutWorkers(req);
    await this.#prefetch(req, seeds, keys, params).catch((e: unknown) =>
      req.onEvent?.({
        type: "warning",
        backend: this.id,
        message: `could not enqueue the later prompts ahead: ${toPickrankError(e).message}`,
      }),
    );
    for (const it of items) req.onEvent?.({ type: "queued", backend: this.id, key: it.key, seed: it.seed });
    const outstanding = new Map(items.map((it) => [it.id, it]));
    // Jobs the queue's events named since the last look; every pollMs, all outstanding jobs are looked at
    // (events missed while Redis restarted, or while this process was down).
    const signalled = new Set<string>();
    const pollMs = this.#o.pollMs ?? 1000;
    let sweepAt = 0;
    let wake: () => void = () => {};
    for (const it of items)
      this.#listeners.set(it.id, {
        wake: () => {
          signalled.add(it.id);
          wake();
        },
        progress: (p) => {
          if (p?.step !== undefined && p.steps !== undefined)
            req.onEvent?.({ type: "progress", backend: this.id, key: it.key, step: p.step, steps: p.steps });
        },
      });
    try {
      while (outstanding.size > 0) {
        if (req.signal?.aborted) throw abortedError("the queue", req.signal.reason);
        const woken = new Promise<void>((r) => (wake = r));
        const full = performance.now() >= sweepAt;
        if (full) sweepAt = performance.now() + pollMs;
        const look = full ? [...outstanding.values()] : [...signalled].flatMap((id) => outstanding.get(id) ?? []);
        signalled.clear();
        let progressed = false;
        for (const it of look) {
          const state = await this.#queue.getJobState(it.id);
          if (state === "completed") {
            const job = await this.#queue.getJob(it.id);
            if (!job) continue; // removed between the two calls: looked at again next round
            const c = await this.#collect(job, it);
            outstanding.delete(it.id);
            progressed = true;
            req.onEvent?.({ type: "candidate", backend: c.backend, key: it.key, seed: c.seed });
            yield c;
            await this.#release(job, it.id); // after the yield: the selector has journaled the candidate
          } else if (state === "failed") {
            const job = await this.#queue.getJob(it.id);
            outstanding.delete(it.id);
            progressed = true;
            yield { ok: false, key: it.key, seed: it.seed, backend: this.id, error: errorFromReason(job?.failedReason, it.seed) };
          } else if (state === "unknown") {
            await this.#enqueue(req.prompt, [it], false); // lost (Redis restarted without persistence): asked again, same id
          }
        }
        // nap, not a race with sleep(): a sleep that lost the race kept its listener on the caller's signal until the sweep.
        if (!progressed) await nap(Math.max(1, sweepAt - performance.now()), woken, req.signal);
      }
    } finally {
      for (const it of items) this.#listeners.delete(it.id);
    }
  }

  /** Closes the connections; when Redis does not answer within 3 s they are dropped instead of waited for. */
  async close(): Promise<void> {
    this.#closed = true;
    const graceful = Promise.allSettled([this.#events.close(), this.#flows.close(), this.#queue.close()]);
    const ctl = new AbortController();
    const done = await Promise.race([
      graceful.then(() => true),
      sleep(3000, ctl.signal).then(
        () => false,
        () => false,
      ),
    ]);
    ctl.abort();
    this.#redis.disconnect();
    if (done) return;
    const dropped = Promise.allSettled([this.#events.disconnect(), this.#flows.disconnect(), this.#queue.disconnect()]);
    await Promise.race([dropped, sleep(1000).catch(() => {})]);
  }

  #item(prompt: string, negativePrompt: string | undefined, seed: number, params: GenerationParams, key: string): Item {
    const data: RenderJobData = { prompt, seed, params, model: this.#o.model };
    if (negativePrompt !== undefined) data.negativePrompt = negativePrompt;
    return { key, seed, id: renderJobId(this.queueName, data), data };
  }

  get #collectedKey(): string {
    return `${QUEUE_PREFIX}:${this.queueName}:collected`;
  }

  /** Runs enqueue steps one at a time, so two never add the same id between their check and their add. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => {});
    return run;
  }

  /**
   * Adds the items not in Redis as one flow (a parent for the prompt, a child per seed), and sends failed
   * ones back to the queue when `retryFailed`. Items asked again are no longer "collected".
   */
  #enqueue(prompt: string, items: Item[], retryFailed: boolean): Promise<void> {
    return this.#exclusive(async () => {
      if (items.length === 0) return;
      await this.#redis.srem(this.#collectedKey, ...items.map((it) => it.id));
      const missing: Item[] = [];
      for (const it of items) {
        const job = await this.#queue.getJob(it.id);
        if (!job) missing.push(it);
        else if (retryFailed && (await job.getState()) === "failed") await job.retry("failed");
      }
      if (missing.length > 0) await this.#flows.add(this.#flow(prompt, missing));
    });
  }

  #flow(prompt: string, items: Item[]) {
    const retention = this.#o.retentionS ?? 7 * 24 * 3600;
    return {
      name: "prompt",
      queueName: promptsQueueName(this.queueName),
      data: { prompt, n: items.length },
      children: items.map((it) => ({
        name: "render",
        queueName: this.queueName,
        data: it.data,
        opts: {
          jobId: it.id,
          attempts: this.#o.attempts ?? 5,
          backoff: { type: "exponential", delay: 1000 },
          removeOnComplete: { age: retention },
          removeOnFail: { age: retention },
          ignoreDependencyOnFailure: true,
        },
      })),
    };
  }

  /**
   * With a plan: the run's later prompts with the same seeds and settings, enqueued once per (first
   * seed, settings), skipping jobs that exist or were already collected.
   */
  async #prefetch(req: GenerateRequest, seeds: number[], keys: string[], params: GenerationParams): Promise<void> {
    const plan = this.#o.plan;
    const index = plan ? plan.prompts.indexOf(req.prompt) : -1;
    if (!plan || index < 0 || !/^\d+$/.test(keys[0] ?? "")) return;
    if (plan.params !== undefined && JSON.stringify(canonical(plan.params)) !== JSON.stringify(canonical(params))) return;
    const first = seeds[0]! - Number(keys[0]);
    const mark = createHash("sha256")
      .update(JSON.stringify([first, params, req.negativePrompt ?? null]))
      .digest("hex");
    if (this.#prefetched.has(mark)) return;
    this.#prefetched.add(mark);
    const all = Array.from({ length: plan.n }, (_, i) => first + i);
    for (const prompt of plan.prompts.slice(index + 1)) {
      const items = all.map((seed, i) => this.#item(prompt, req.negativePrompt, seed, params, String(i)));
      const collected = await this.#redis.smismember(this.#collectedKey, ...items.map((it) => it.id));
      const todo = items.filter((_, i) => collected[i] !== 1);
      await this.#exclusive(async () => {
        const missing: Item[] = [];
        for (const it of todo) if (!(await this.#queue.getJob(it.id))) missing.push(it);
        if (missing.length > 0) await this.#flows.add(this.#flow(prompt, missing));
      });
    }
  }

  /** The candidate of a completed job: its image (by value, or read from the shared folder) and the worker's embedding. */
  async #collect(job: Job<RenderJobData, RenderJobResult>, it: Item): Promise<Candidate> {
    const r = job.returnvalue;
    const image = await this.#image(r);
    this.embeddings.set(image, decodeEmbedding(r.embedding, this.#o.dims));
    const c: Candidate = {
      ok: true,
      key: it.key,
      seed: r.seed,
      image,
      format: r.format,
      backend: `${r.worker}/${r.backend}`,
      timings: r.timings,
    };
    if (r.batchIndex !== undefined) c.batchIndex = r.batchIndex;
    if (r.meta) c.meta = r.meta;
    return c;
  }

  async #image(r: RenderJobResult): Promise<Buffer> {
    if (r.image.by === "value") return Buffer.from(r.image.base64, "base64");
    const dir = this.#o.sharedDir;
    if (dir === undefined)
      throw new PickrankError(
        "BAD_INPUT",
        `Expected --shared-dir on the coordinator: worker ${r.worker} passed its image by reference (${r.image.file}) in the shared folder`,
        { details: { parameter: "--shared-dir" } },
      );
    const file = path.join(dir, r.image.file);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (e) {
      throw fsError(e, { path: file, option: "--shared-dir", action: "read the image a worker left in the shared folder" });
    }
    const sha = createHash("sha256").update(bytes).digest("hex");
    if (sha !== r.image.sha256)
      throw new PickrankError(
        "INTEGRITY",
        `Expected the image ${file} from worker ${r.worker} to have sha256 ${r.image.sha256} but it has ${sha}`,
        {
          details: { file, expected: r.image.sha256, actual: sha },
        },
      );
    return bytes;
  }

  /** Once journaled: remember the id as collected, drop the job (and its image) from Redis and the shared folder. */
  async #release(job: Job<RenderJobData, RenderJobResult>, id: string): Promise<void> {
    const retention = this.#o.retentionS ?? 7 * 24 * 3600;
    await this.#redis.sadd(this.#collectedKey, id);
    await this.#redis.expire(this.#collectedKey, retention);
    const r = job.returnvalue;
    await job.remove().catch(() => {}); // already gone (retention) is fine
    if (r.image.by === "reference" && this.#o.sharedDir !== undefined)
      await rm(path.join(this.#o.sharedDir, r.image.file), { force: true }).catch(() => {});
  }
}

/**
 * The selector's scorer, with the image embeddings the workers computed: embedImages() answers from
 * `embeddings` for the image buffers the queue backend yielded and asks `scorer` for the others (the
 * candidates a resumed run replays from its journal). Everything else is the scorer's own.
 */
export function withWorkerEmbeddings<S extends { embedImages(images: Buffer[], o?: { signal?: AbortSignal }): Promise<Float32Array[]> }>(
  scorer: S,
  embeddings: WeakMap<Buffer, Float32Array>,
): S {
  const embedImages = async (images: Buffer[], o?: { signal?: AbortSignal }): Promise<Float32Array[]> => {
    const out: (Float32Array | undefined)[] = images.map((b) => embeddings.get(b));
    const rest = images.filter((_, i) => out[i] === undefined);
    if (rest.length > 0) {
      const local = await scorer.embedImages(rest, o);
      let j = 0;
      for (let i = 0; i < out.length; i++) if (out[i] === undefined) out[i] = local[j++];
    }
    return out as Float32Array[];
  };
  return new Proxy(scorer, {
    get: (target, prop, receiver) => {
      if (prop === "embedImages") return embedImages;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

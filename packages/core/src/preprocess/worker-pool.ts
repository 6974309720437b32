/**
 * Runs preprocessImage on worker threads. Decoding happens on libvips' threads either way, but the
 * bicubic resample and the normalization are JavaScript: on the main thread they serialize, and for
 * N = 32 candidates of 1024² they dominate the end-to-end time. A pool spreads them over the cores
 * and leaves the main thread free to feed the device.
 */
import os from "node:os";
import { Worker } from "node:worker_threads";
import { PickrankError, type ErrorCode } from "@pickrank/contract";
import type { ImageInput, PreprocessSettings } from "./image.ts";

interface Job {
  id: number;
  input: ImageInput;
  settings: PreprocessSettings;
  resolve: (px: Float32Array) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  /** Jobs sent to this worker and not answered yet. */
  busy: Map<number, Job>;
}

/**
 * Jobs in flight per worker: two, so that libvips decodes the next image (on its own threads) while
 * the worker's JavaScript resamples the current one.
 */
const PER_WORKER = 2;

type Reply =
  | { id: number; px: Float32Array }
  | { id: number; error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };

/**
 * The worker's entry point. Built (dist/*.js): the compiled worker.js beside this file, started like
 * this thread. From the TypeScript sources (tests, `pnpm pickrank`): worker-dev.js, which registers
 * tsx first, with the "development" export condition so that workspace packages resolve to src/ too.
 */
function workerEntry(): { url: URL; execArgv: string[] } {
  if (!import.meta.url.endsWith(".ts")) return { url: new URL("./worker.js", import.meta.url), execArgv: process.execArgv };
  const dev = "--conditions=development";
  const execArgv = process.execArgv.includes(dev) ? process.execArgv : [...process.execArgv, dev];
  return { url: new URL("./worker-dev.js", import.meta.url), execArgv };
}

/**
 * Workers worth starting here: one per core, at most 8. The main thread only moves tensors: the ONNX
 * Runtime sessions run on threads of their own (runtime/session-thread.ts), and each worker's decode runs
 * on libuv's threads while its JavaScript resamples the image before (two jobs in flight per worker).
 */
export function defaultPreprocessWorkers(): number {
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(8, cores));
}

export class PreprocessPool {
  readonly size: number;
  #slots: Slot[] = [];
  #queue: Job[] = [];
  #nextId = 0;
  #closed = false;

  constructor(size: number) {
    this.size = size;
  }

  run(input: ImageInput, settings: PreprocessSettings): Promise<Float32Array> {
    if (this.#closed) return Promise.reject(new PickrankError("INTERNAL", "The preprocessing pool was closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, input, settings, resolve, reject });
      this.#pump();
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const err = new PickrankError("ABORTED", "The preprocessing pool was closed");
    for (const job of this.#queue.splice(0)) job.reject(err);
    await Promise.all(
      this.#slots.map(async (s) => {
        for (const job of s.busy.values()) job.reject(err);
        await s.worker.terminate();
      }),
    );
    this.#slots = [];
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      // Fill idle workers first, start new ones next, and only then double up.
      let slot = this.#slots.find((s) => s.busy.size === 0);
      if (!slot && this.#slots.length < this.size) slot = this.#spawn();
      slot ??= this.#slots.find((s) => s.busy.size < PER_WORKER);
      if (!slot) return;
      const job = this.#queue.shift()!;
      slot.busy.set(job.id, job);
      const s = slot;
      s.ready.then(
        () => s.worker.postMessage({ id: job.id, input: job.input, settings: job.settings }),
        (e: unknown) => this.#fail(s, e),
      );
    }
  }

  #spawn(): Slot {
    const entry = workerEntry();
    const worker = new Worker(entry.url, { execArgv: entry.execArgv });
    worker.unref();
    let markReady!: () => void;
    let markFailed!: (e: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      markReady = res;
      markFailed = rej;
    });
    ready.catch(() => undefined);
    const slot: Slot = { worker, ready, busy: new Map() };
    worker.on("message", (msg: Reply | { ready: true }) => {
      if ("ready" in msg) {
        markReady();
        return;
      }
      const job = slot.busy.get(msg.id);
      if (!job) return;
      slot.busy.delete(msg.id);
      if ("px" in msg) job.resolve(msg.px);
      else job.reject(new PickrankError(msg.error.code, msg.error.message, msg.error.details ? { details: msg.error.details } : {}));
      this.#pump();
    });
    worker.on("error", (e) => {
      markFailed(e);
      this.#fail(slot, e);
    });
    worker.on("exit", (code) => {
      if (!this.#closed && code !== 0) this.#fail(slot, new PickrankError("INTERNAL", `preprocessing worker exited with code ${code}`));
    });
    this.#slots.push(slot);
    return slot;
  }

  /** A worker that died fails its jobs and is replaced on the next pump. */
  #fail(slot: Slot, e: unknown): void {
    this.#slots = this.#slots.filter((s) => s !== slot);
    const jobs = [...slot.busy.values()];
    slot.busy.clear();
    void slot.worker.terminate();
    const err = new PickrankError("INTERNAL", `A preprocessing worker failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    for (const job of jobs) job.reject(err);
    if (!this.#closed) this.#pump();
  }
}

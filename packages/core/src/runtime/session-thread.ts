/**
 * GraphSessions whose ONNX Runtime sessions live on a worker thread.
 *
 * onnxruntime-node creates sessions and runs graphs synchronously on the calling thread: on the main
 * thread, a 20 s model load or a 2 s vision run stops the event loop (no HTTP request is read, no
 * preprocessed image is collected, no timer fires), and two sessions cannot load at once. On a worker
 * thread each session loads and runs beside the event loop. One thread can hold several sessions: the
 * GPU providers need that (two WebGPU sessions running on two threads crash Dawn, measured with
 * SwiftShader), while CPU sessions get a thread each so that they load at once. Tensors cross by
 * structured clone (a copy: the caller's buffers stay usable).
 */
import { Worker } from "node:worker_threads";
import { PickrankError, abortedError, type ErrorCode } from "@pickrank/contract";
import type { DeviceName, GraphSession, LocalSessionOptions, RunOptions, TensorData } from "./ort.ts";

/** A message from the session thread (see session-worker.ts). */
export type SessionReply =
  | { kind: "opened"; id: number; inputNames: string[]; outputNames: string[] }
  | { kind: "result"; id: number; outputs: Record<string, TensorData> }
  | { kind: "failed"; id: number; error: SerializedError }
  | { kind: "released"; id: number };

/** A message to the session thread; `sid` is the id of the "open" message that opened the session. */
export type SessionRequest =
  | { kind: "open"; id: number; file: string; device: DeviceName; options: LocalSessionOptions }
  | { kind: "run"; id: number; sid: number; feeds: Record<string, TensorData> }
  | { kind: "release"; id: number; sid: number };

/** A request before the thread gives it its id. */
type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

/** A PickrankError as it crosses threads (structured clone keeps no class). */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown> | undefined;
}

function revive(e: SerializedError): PickrankError {
  return new PickrankError(e.code, e.message, e.details ? { details: e.details } : {});
}

/**
 * The worker's entry point. Built (dist/*.js): the compiled session-worker.js beside this file. From the
 * TypeScript sources (tests, `pnpm pickrank`): session-worker-dev.js, which registers tsx first, with the
 * "development" export condition so that workspace packages resolve to src/ too.
 */
function workerEntry(): { url: URL; execArgv: string[] } {
  if (!import.meta.url.endsWith(".ts")) return { url: new URL("./session-worker.js", import.meta.url), execArgv: process.execArgv };
  const dev = "--conditions=development";
  const execArgv = process.execArgv.includes(dev) ? process.execArgv : [...process.execArgv, dev];
  return { url: new URL("./session-worker-dev.js", import.meta.url), execArgv };
}

interface Call {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

function shortName(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

/**
 * One worker thread holding ONNX Runtime sessions. Messages are answered one at a time, in order (a
 * release waits for the runs asked before it). The thread keeps the process alive only while a load or
 * a run is in flight, and ends when its last session is released. A thread that dies fails what it had
 * in flight with INTERNAL.
 */
export class SessionThread {
  readonly #worker: Worker;
  readonly #calls = new Map<number, Call>();
  #nextId = 1;
  #open = 0;
  #dead: PickrankError | undefined;

  constructor() {
    const entry = workerEntry();
    this.#worker = new Worker(entry.url, { execArgv: entry.execArgv });
    this.#worker.unref();
    this.#worker.on("message", (msg: SessionReply) => {
      const call = this.#calls.get(msg.id);
      if (!call) return;
      this.#calls.delete(msg.id);
      if (msg.kind === "failed") call.reject(revive(msg.error));
      else call.resolve(msg);
      this.#idle();
    });
    const died = (why: string, cause?: unknown): void => {
      this.#dead ??= new PickrankError("INTERNAL", `The ONNX Runtime thread ${why}`, cause === undefined ? {} : { cause });
      for (const c of this.#calls.values()) c.reject(this.#dead);
      this.#calls.clear();
    };
    this.#worker.on("error", (e) => died(`failed: ${e instanceof Error ? e.message : String(e)}`, e));
    this.#worker.on("exit", (code) => died(`exited (code ${code})`));
  }

  /** Whether the thread has ended (or is ending): it opens nothing more. */
  get closed(): boolean {
    return this.#dead !== undefined;
  }

  #idle(): void {
    if (this.#calls.size === 0) this.#worker.unref();
  }

  #call(req: WithoutId<SessionRequest>, signal?: AbortSignal): Promise<SessionReply> {
    if (this.#dead) return Promise.reject(this.#dead);
    if (signal?.aborted) return Promise.reject(abortedError("scoring", signal.reason));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        // The graph cannot be stopped mid-run: its result is dropped when it comes.
        this.#calls.delete(id);
        this.#idle();
        reject(abortedError("scoring", signal!.reason));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      const settle =
        <T>(f: (v: T) => void) =>
        (v: T): void => {
          signal?.removeEventListener("abort", onAbort);
          f(v);
        };
      this.#calls.set(id, { resolve: settle(resolve as (v: unknown) => void), reject: settle(reject) });
      this.#worker.ref();
      this.#worker.postMessage({ ...req, id });
    });
  }

  /**
   * Opens `file` on `device` on this thread, with the errors `openLocalSession` throws there
   * (BAD_MODEL, DEVICE_UNAVAILABLE), or INTERNAL when the thread itself failed.
   */
  async open(file: string, device: DeviceName, options: LocalSessionOptions): Promise<GraphSession> {
    this.#open++;
    let opened: SessionReply;
    try {
      opened = await this.#call({ kind: "open", file, device, options });
    } catch (e) {
      await this.#closeOne();
      throw e;
    }
    const { id: sid, inputNames, outputNames } = opened as Extract<SessionReply, { kind: "opened" }>;
    let released: Promise<void> | undefined;
    return {
      device,
      inputNames,
      outputNames,
      run: async (feeds: Record<string, TensorData>, opts: RunOptions = {}) => {
        if (released) throw new PickrankError("INTERNAL", `Session for ${shortName(file)} was already released`);
        const r = (await this.#call({ kind: "run", sid, feeds }, opts.signal)) as Extract<SessionReply, { kind: "result" }>;
        return r.outputs;
      },
      release: () => {
        released ??= this.#call({ kind: "release", sid }).then(
          () => this.#closeOne(),
          () => this.#closeOne(),
        );
        return released;
      },
    };
  }

  /** One session fewer; the thread ends with its last one. */
  async #closeOne(): Promise<void> {
    if (--this.#open > 0) return;
    this.#dead ??= new PickrankError("INTERNAL", "The ONNX Runtime thread was closed");
    await this.#worker.terminate();
  }
}

let gpu: SessionThread | undefined;

/**
 * The thread that holds every GPU session of this process (WebGPU, CUDA): Dawn crashes when sessions run
 * on two threads, and one device runs one graph at a time anyway. Started on first use, and again after
 * its last session was released.
 */
export function gpuSessionThread(): SessionThread {
  if (!gpu || gpu.closed) gpu = new SessionThread();
  return gpu;
}

/**
 * Opens `file` on `device` on `thread`, or on a new thread of its own. Errors as SessionThread#open.
 */
export function openWorkerSession(
  file: string,
  device: DeviceName,
  options: LocalSessionOptions,
  thread: SessionThread = new SessionThread(),
): Promise<GraphSession> {
  return thread.open(file, device, options);
}

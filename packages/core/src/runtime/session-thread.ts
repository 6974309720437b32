/**
 * A GraphSession whose ONNX Runtime session lives on a worker thread of its own.
 *
 * onnxruntime-node creates sessions and runs graphs synchronously on the calling thread: on the main
 * thread, a 20 s model load or a 2 s vision run stops the event loop (no HTTP request is read, no
 * preprocessed image is collected, no timer fires), and two sessions cannot load at once. On a worker
 * thread each session loads and runs beside the event loop, and the text and vision sessions of a
 * model load concurrently. Tensors cross by structured clone (a copy: the caller's buffers stay usable).
 */
import { Worker } from "node:worker_threads";
import { PickrankError, abortedError, type ErrorCode } from "@pickrank/contract";
import type { DeviceName, GraphSession, LocalSessionOptions, RunOptions, TensorData } from "./ort.ts";

/** A message from the session worker (see session-worker.ts). */
export type SessionReply =
  | { kind: "ready"; inputNames: string[]; outputNames: string[] }
  | { kind: "result"; id: number; outputs: Record<string, TensorData> }
  | { kind: "failed"; id?: number; error: SerializedError }
  | { kind: "released"; id: number };

/** A message to the session worker. */
export type SessionRequest = { kind: "run"; id: number; feeds: Record<string, TensorData> } | { kind: "release"; id: number };

/** What the worker thread was started with (its workerData). */
export interface SessionWorkerData {
  file: string;
  device: DeviceName;
  options: LocalSessionOptions;
}

/** A PickrankError as it crosses threads (structured clone keeps no class). */
export interface SerializedError {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown> | undefined;
}

/** The error as a PickrankError again, on this side. */
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

/**
 * Opens `file` on `device` in a new worker thread and resolves once the session is ready, with the
 * errors `openLocalSession` throws there (BAD_MODEL, DEVICE_UNAVAILABLE), or INTERNAL when the thread
 * itself fails. The worker keeps the process alive only while a load or a run is in flight.
 */
export function openWorkerSession(file: string, device: DeviceName, options: LocalSessionOptions): Promise<GraphSession> {
  const entry = workerEntry();
  const data: SessionWorkerData = { file, device, options };
  const worker = new Worker(entry.url, { execArgv: entry.execArgv, workerData: data });
  const calls = new Map<number, Call>();
  let nextId = 1;
  let dead: PickrankError | undefined;
  const idle = (): void => {
    if (calls.size === 0) worker.unref();
  };
  const failAll = (err: PickrankError): void => {
    dead ??= err;
    for (const c of calls.values()) c.reject(err);
    calls.clear();
  };
  return new Promise<GraphSession>((resolveOpen, rejectOpen) => {
    let opened = false;
    worker.on("message", (msg: SessionReply) => {
      if (msg.kind === "ready") {
        opened = true;
        idle();
        resolveOpen(makeSession(msg));
        return;
      }
      if (msg.id === undefined) {
        // A load failure (the worker exits after sending it).
        opened = true;
        dead = revive((msg as { error: SerializedError }).error);
        rejectOpen(dead);
        void worker.terminate();
        return;
      }
      const call = calls.get(msg.id);
      if (!call) return;
      calls.delete(msg.id);
      if (msg.kind === "result") call.resolve(msg.outputs);
      else if (msg.kind === "released") call.resolve(undefined);
      else call.reject(revive(msg.error));
      idle();
    });
    const threadFailed = (why: string, cause?: unknown): void => {
      const err = new PickrankError("INTERNAL", `The ONNX Runtime thread of ${shortName(file)} ${why}`, {
        ...(cause === undefined ? {} : { cause }),
        details: { file, device },
      });
      failAll(err);
      if (!opened) rejectOpen(err);
    };
    worker.on("error", (e) => threadFailed(`failed: ${e instanceof Error ? e.message : String(e)}`, e));
    worker.on("exit", (code) => threadFailed(`exited (code ${code})`));
  });

  function call(req: SessionRequest, signal?: AbortSignal): Promise<unknown> {
    if (dead) return Promise.reject(dead);
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        // The graph cannot be stopped mid-run: its result is dropped when it comes.
        calls.delete(req.id);
        idle();
        reject(abortedError("scoring", signal!.reason));
      };
      if (signal?.aborted) {
        reject(abortedError("scoring", signal.reason));
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      const done = (): void => signal?.removeEventListener("abort", onAbort);
      calls.set(req.id, {
        resolve: (v) => {
          done();
          resolve(v);
        },
        reject: (e) => {
          done();
          reject(e);
        },
      });
      worker.ref();
      worker.postMessage(req);
    });
  }

  function makeSession(ready: { inputNames: string[]; outputNames: string[] }): GraphSession {
    let released: Promise<void> | undefined;
    return {
      device,
      inputNames: ready.inputNames,
      outputNames: ready.outputNames,
      async run(feeds: Record<string, TensorData>, opts: RunOptions = {}) {
        if (released) throw new PickrankError("INTERNAL", `Session for ${shortName(file)} was already released`);
        return (await call({ kind: "run", id: nextId++, feeds }, opts.signal)) as Record<string, TensorData>;
      },
      release() {
        released ??= (async () => {
          // Runs already posted finish first: the worker answers messages in order.
          await call({ kind: "release", id: nextId++ }).catch(() => undefined);
          dead ??= new PickrankError("INTERNAL", `Session for ${shortName(file)} was already released`);
          await worker.terminate();
        })();
        return released;
      },
    };
  }
}

function shortName(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

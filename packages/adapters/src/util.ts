import { abortedError, invalidParameter, isPickrankError, PickrankError } from "@pickrank/contract";
export { Channel, sleep } from "@pickrank/contract";
import type { BackendEvent, GenerateRequest } from "@pickrank/contract";

/** Largest seed Automatic1111 accepts (its samplers and variation seeds use 32-bit seeds). */
export const MAX_SEED_32 = 0xffff_ffff;

/** A random first seed below 2^31, valid on every backend. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fff_ffff);
}

export function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

function isSeed(v: unknown, maxSeed: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= maxSeed;
}

function seedRange(maxSeed: number, who: string | undefined): string {
  return `an integer between 0 and ${maxSeed}${who === undefined ? "" : ` (the largest seed ${who} accepts)`}`;
}

/**
 * Validates the parts of a request every backend shares and returns the seed of each candidate:
 * `seeds` as given, else `seed + i` (default seed: random below 2^31).
 * Throws BAD_INPUT for a bad prompt, n, seed or seeds, and for any seed above `maxSeed`
 * (default 2^53 − 1; pass the backend's `maxSeed` and its id so the message names the limit).
 */
export function resolveSeeds(req: GenerateRequest, maxSeed = Number.MAX_SAFE_INTEGER, who?: string): number[] {
  if (req === null || typeof req !== "object") throw invalidParameter("request", "an object", req);
  if (typeof req.prompt !== "string") throw invalidParameter("prompt", "a string", req.prompt);
  if (req.negativePrompt !== undefined && typeof req.negativePrompt !== "string") {
    throw invalidParameter("negativePrompt", "a string", req.negativePrompt);
  }
  if (!isPositiveInt(req.n)) throw invalidParameter("n", "positive integer", req.n);
  if (req.seeds !== undefined) {
    if (!Array.isArray(req.seeds) || req.seeds.length !== req.n) {
      throw invalidParameter("seeds", `an array of exactly n = ${req.n} seeds`, req.seeds);
    }
    req.seeds.forEach((s, i) => {
      if (!isSeed(s, Number.MAX_SAFE_INTEGER)) throw invalidParameter(`seeds[${i}]`, "non-negative integer", s);
      if (!isSeed(s, maxSeed)) throw invalidParameter(`seeds[${i}]`, seedRange(maxSeed, who), s);
    });
    return [...req.seeds];
  }
  if (req.seed !== undefined && !isSeed(req.seed, Number.MAX_SAFE_INTEGER))
    throw invalidParameter("seed", "non-negative integer", req.seed);
  const first = req.seed ?? randomSeed();
  if (first > maxSeed - (req.n - 1)) {
    const whose = who === undefined ? "" : `, the largest seed ${who} accepts`;
    const why = `${seedRange(maxSeed - req.n + 1, undefined)}, so that seed + n − 1 stays at or below ${maxSeed}${whose}`;
    throw invalidParameter("seed", why, first);
  }
  return Array.from({ length: req.n }, (_, i) => first + i);
}

/** The caller's key of each candidate (GenerateRequest.keys), or "0".."n-1". Throws BAD_INPUT for a wrong count or duplicates. */
export function resolveKeys(req: GenerateRequest): string[] {
  if (req.keys === undefined) return Array.from({ length: req.n }, (_, i) => String(i));
  if (!Array.isArray(req.keys) || req.keys.length !== req.n || req.keys.some((k) => typeof k !== "string")) {
    throw invalidParameter("keys", `an array of exactly n = ${req.n} strings`, req.keys);
  }
  if (new Set(req.keys).size !== req.keys.length) throw invalidParameter("keys", "unique strings", req.keys);
  return [...req.keys];
}

/** Checks GenerationParams' common fields (BAD_INPUT naming the field); `extra` is each adapter's to check. */
export function validateParams(params: GenerateRequest["params"]): void {
  if (params === undefined) return;
  if (params === null || typeof params !== "object") throw invalidParameter("params", "an object", params);
  for (const k of ["steps", "width", "height", "batchSize"] as const) {
    const v = params[k];
    if (v !== undefined && !isPositiveInt(v)) throw invalidParameter(k, "positive integer", v);
  }
  if (params.cfgScale !== undefined && (typeof params.cfgScale !== "number" || !Number.isFinite(params.cfgScale) || params.cfgScale < 0)) {
    throw invalidParameter("cfgScale", "non-negative finite number", params.cfgScale);
  }
  for (const k of ["sampler", "scheduler", "checkpoint"] as const) {
    const v = params[k];
    if (v !== undefined && (typeof v !== "string" || v === "")) throw invalidParameter(k, "non-empty string", v);
  }
  if (params.extra !== undefined && (params.extra === null || typeof params.extra !== "object" || Array.isArray(params.extra))) {
    throw invalidParameter("extra", "an object", params.extra);
  }
}

/** What a backend needs to know to start a run. */
export interface RunTarget {
  id: string;
  maxSeed: number;
  /** Set once close() was called: a run then throws CLOSED. */
  closed: boolean;
}

/**
 * What every backend's generate() does first: refuse a closed backend (CLOSED), validate the request
 * (BAD_INPUT), refuse an already aborted one (ABORTED), and wrap the caller's event listener so that
 * a listener that throws cannot break the run.
 */
export function beginRun(target: RunTarget, req: GenerateRequest): { seeds: number[]; keys: string[]; emit: (e: BackendEvent) => void } {
  if (target.closed) throw closedError(target.id);
  const seeds = resolveSeeds(req, target.maxSeed, target.id);
  const keys = resolveKeys(req);
  validateParams(req.params);
  if (req.signal?.aborted) throw abortError(target.id, req.signal.reason);
  const emit = (e: BackendEvent): void => {
    try {
      req.onEvent?.(e);
    } catch {
      // A failing listener must not break the run.
    }
  };
  return { seeds, keys, emit };
}

export function sniffFormat(b: Uint8Array): "png" | "jpeg" | "webp" | undefined {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return "png";
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  const ascii = (o: number, n: number): string => String.fromCharCode(...b.subarray(o, o + n));
  if (b.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 4) === "WEBP") return "webp";
  return undefined;
}

/** ABORTED for a run on `backend` (the reason as cause). */
export function abortError(backend: string, reason?: unknown): PickrankError {
  return abortedError(`generation on ${backend}`, reason, { backend });
}

/** CLOSED for a backend used after (or stopped by) close(). */
export function closedError(backend: string): PickrankError<"CLOSED"> {
  return new PickrankError("CLOSED", `${backend} is closed: it takes no more generate() calls and its running ones were stopped`, {
    details: { what: backend },
  });
}

/**
 * Why a run stopped, from its AbortController's reason: a PickrankError reason (CLOSED from close(),
 * BACKEND_STALLED …) is kept as it is; anything else is the caller's cancellation (ABORTED).
 */
export function stopError(backend: string, reason: unknown): PickrankError {
  return isPickrankError(reason) ? reason : abortError(backend, reason);
}

/**
 * The cancellation plumbing of one run: an AbortController that fires with the caller's signal, and
 * with CLOSED when the backend is closed (register it in the backend's `live` set).
 */
export function runController(signal: AbortSignal | undefined, live: Set<AbortController>): { ac: AbortController; release: () => void } {
  const ac = new AbortController();
  live.add(ac);
  const onAbort = (): void => ac.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  return {
    ac,
    release: () => {
      signal?.removeEventListener("abort", onAbort);
      live.delete(ac);
    },
  };
}

/**
 * The end every backend's generate() shares: `open()` starts the run and gives its results, which are
 * yielded until they end. An abort (the caller's signal, close()) becomes the run's stop error
 * (ABORTED or CLOSED); on the way out (done, thrown, or the caller's `return()`) the run is released
 * and aborted, then `stop()` takes its work off the server before the generator returns.
 */
export async function* drainRun<T>(
  backend: string,
  run: { ac: AbortController; release: () => void },
  open: () => Promise<{ next(): Promise<IteratorResult<T>> }> | { next(): Promise<IteratorResult<T>> },
  stop: () => Promise<unknown>,
): AsyncGenerator<T> {
  const { ac, release } = run;
  try {
    const results = await open();
    for (;;) {
      const r = await results.next();
      if (r.done) break;
      yield r.value;
    }
  } catch (e) {
    if (ac.signal.aborted) throw stopError(backend, ac.signal.reason);
    throw e;
  } finally {
    release();
    if (!ac.signal.aborted) ac.abort();
    await stop();
  }
}

/** Aborts every live run of a backend with CLOSED. */
export function closeRuns(backend: string, live: Set<AbortController>): void {
  const err = closedError(backend);
  for (const ac of live) ac.abort(err);
  live.clear();
}

import { abortedError, invalidParameter, type PickrankError } from "@pickrank/contract";
export { Channel, sleep } from "@pickrank/contract";
import type { BackendEvent, GenerateRequest } from "@pickrank/contract";

/** Largest seed every backend accepts (A1111 and the SD samplers use 32-bit seeds). */
export const MAX_SEED = 0xffff_ffff;

export function randomSeed(): number {
  return Math.floor(Math.random() * 0x7fff_ffff);
}

export function isPositiveInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

function isSeed(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= Number.MAX_SAFE_INTEGER;
}

/** Validates the parts of a request every backend shares and returns the seed of each candidate. */
export function resolveSeeds(req: GenerateRequest): number[] {
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
      if (!isSeed(s)) throw invalidParameter(`seeds[${i}]`, "non-negative integer", s);
    });
    return [...req.seeds];
  }
  if (req.seed !== undefined && !isSeed(req.seed)) throw invalidParameter("seed", "non-negative integer", req.seed);
  const first = req.seed ?? randomSeed();
  return Array.from({ length: req.n }, (_, i) => first + i);
}

/** The caller's key of each candidate (GenerateRequest.keys), or "0".."n-1". */
export function resolveKeys(req: GenerateRequest): string[] {
  if (req.keys === undefined) return Array.from({ length: req.n }, (_, i) => String(i));
  if (!Array.isArray(req.keys) || req.keys.length !== req.n || req.keys.some((k) => typeof k !== "string")) {
    throw invalidParameter("keys", `an array of exactly n = ${req.n} strings`, req.keys);
  }
  if (new Set(req.keys).size !== req.keys.length) throw invalidParameter("keys", "unique strings", req.keys);
  return [...req.keys];
}

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

/**
 * What every backend's generate() does first: validate the request, refuse an already aborted one,
 * and wrap the caller's event listener so that a listener that throws cannot break the run.
 */
export function beginRun(backend: string, req: GenerateRequest): { seeds: number[]; keys: string[]; emit: (e: BackendEvent) => void } {
  const seeds = resolveSeeds(req);
  const keys = resolveKeys(req);
  validateParams(req.params);
  if (req.signal?.aborted) throw abortError(backend, req.signal.reason);
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


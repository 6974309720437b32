import type { PickrankError } from "@pickrank/contract";

/** Generation settings common to every backend; each adapter maps them onto its own protocol. */
export interface GenerationParams {
  steps?: number;
  cfgScale?: number;
  width?: number;
  height?: number;
  sampler?: string;
  scheduler?: string;
  checkpoint?: string;
  batchSize?: number;
  /** Passed through to the backend (A1111: merged into the txt2img body; ComfyUI: `{ nodeId: { input: value } }`). */
  extra?: Record<string, unknown>;
}

export interface GenerateRequest {
  prompt: string;
  negativePrompt?: string;
  n: number;
  /** First seed; candidate i gets seed + i. Default: random. */
  seed?: number;
  /** Exact seeds, one per candidate (draft-then-refine re-renders these). Wins over `seed`. */
  seeds?: number[];
  params?: GenerationParams;
  signal?: AbortSignal;
  onEvent?: (e: BackendEvent) => void;
}

export type BackendEvent =
  | { type: "queued"; backend: string; index: number; seed: number }
  | { type: "progress"; backend: string; index?: number; step: number; steps: number }
  | { type: "candidate"; backend: string; index: number; seed: number }
  | { type: "candidate-failed"; backend: string; index: number; seed: number; error: PickrankError }
  | { type: "retry"; backend: string; index: number; seed: number; reason: string };

export interface CandidateTimings {
  /** Waiting in the server's queue. */
  queuedMs: number;
  /** Rendering on the server. */
  renderMs: number;
  /** From our request to the image bytes in hand. */
  totalMs: number;
}

export interface Candidate {
  ok: true;
  /** 0..n-1 in request order. */
  index: number;
  seed: number;
  /** Position inside a server-side batch (images of one batch share one seed). */
  batchIndex?: number;
  image: Buffer;
  format: "png" | "jpeg" | "webp";
  /** e.g. "comfyui@http://127.0.0.1:8188" (never credentials). */
  backend: string;
  timings: CandidateTimings;
  meta?: Record<string, unknown>;
}

export interface FailedCandidate {
  ok: false;
  index: number;
  seed: number;
  backend: string;
  error: PickrankError;
}

export type Generated = Candidate | FailedCandidate;

export interface Backend {
  readonly id: string;
  /** "comfyui" | "a1111" | "pool" | registered others. */
  readonly kind: string;
  /** Yields as each candidate finishes; throws only when nothing can be done (unreachable, rejected workflow, aborted). */
  generate(req: GenerateRequest): AsyncIterable<Generated>;
  /** Reachability and what the server has; never throws for an unreachable server (ok: false, info.error). */
  check(signal?: AbortSignal): Promise<{ ok: boolean; info?: Record<string, unknown> }>;
  close(): Promise<void>;
}

export interface BackendSpec {
  kind: string;
  url: string;
  /** "user:password" (HTTP Basic) or a full Authorization header value ("Bearer …", "Basic …"). */
  auth?: string;
  /** ComfyUI: the workflow in API format (object, or JSON text). */
  workflow?: unknown;
  options?: Record<string, unknown>;
}

export type BackendFactory = (spec: BackendSpec) => Backend;

/**
 * The Backend contract: what a generation server adapter (ComfyUI, Automatic1111, a pool of them)
 * offers the selector, the evaluation and the CLI. Implementations live in @pickrank/adapters; this
 * file has no dependency, so a program that only consumes candidates does not pull in any adapter.
 */
import type { ErrorJSON, PickrankError } from "./errors.ts";

/** Generation settings common to every backend; each adapter maps them onto its own protocol. */
export interface GenerationParams {
  steps?: number;
  cfgScale?: number;
  width?: number;
  height?: number;
  sampler?: string;
  scheduler?: string;
  checkpoint?: string;
  /**
   * Images per request to the server: one ComfyUI prompt, one A1111 txt2img call (default: the
   * backend's own option, else 1). Each candidate reports the seed that reproduces it:
   * - ComfyUI: the images of one prompt share one noise seed (the first candidate's); every image
   *   reports that seed and its `batchIndex`, and is reproduced by the same seed with a batch of at
   *   least batchIndex + 1 images (not by the seed alone). `meta.requestedSeed` keeps the seed the
   *   candidate asked for when it differs. Use 1 when each candidate must be reproducible alone.
   * - A1111: image k of a batch gets seed + k from the server and reports it; that seed alone (batch
   *   size 1) reproduces it. Only runs of consecutive seeds are batched.
   */
  batchSize?: number;
  /**
   * Settings with no common name, in the shape of the backend that reads them:
   * - ComfyUI: `{ [nodeId]: { [input]: value } }`, merged into those nodes' inputs last;
   * - A1111: txt2img body fields (`{ restore_faces: true, enable_hr: true, … }`), merged into the body
   *   last (fields pickrank sets itself — prompt, seed, batch_size … — are refused);
   * - a pool: passed to every member, so refused when the members are of different kinds.
   */
  extra?: Record<string, unknown>;
}

/**
 * One generate() call: the prompt and how many candidates (`n`) to render, with their seeds or keys.
 * Seeds are integers below the backend's `maxSeed`; `keys`, when given, has length n.
 */
export interface GenerateRequest {
  prompt: string;
  negativePrompt?: string;
  /** Candidates to render. */
  n: number;
  /** First seed; candidate i gets seed + i. Default: random. */
  seed?: number;
  /** Exact seeds, one per candidate (draft-then-refine re-renders these). Wins over `seed`. */
  seeds?: number[];
  /**
   * The caller's name for each candidate (n unique strings), echoed as `key` on every result and
   * event, so callers never remap positions. Default: "0" … "n-1".
   */
  keys?: string[];
  params?: GenerationParams;
  signal?: AbortSignal;
  onEvent?: (e: BackendEvent) => void;
}

/**
 * What a backend reports while it works (GenerateRequest.onEvent). `backend` is the id of the server
 * concerned (a pool passes on its members' events with their ids).
 */
export type BackendEvent =
  | { type: "queued"; backend: string; key: string; seed: number }
  | { type: "progress"; backend: string; key?: string; step: number; steps: number }
  | { type: "candidate"; backend: string; key: string; seed: number }
  | { type: "candidate-failed"; backend: string; key: string; seed: number; error: PickrankError }
  | { type: "retry"; backend: string; key: string; seed: number; reason: string }
  /**
   * Something the user should know that does not stop the run, sent once when it happens: a pool
   * member down at the start or taken off mid-run (`code`: the member's error code, e.g.
   * "BACKEND_UNREACHABLE"), a ComfyUI server busy with other clients' work (no code). `message` is
   * one line without credentials, ready to print and to keep in result.json's warnings.
   */
  | { type: "warning"; backend: string; message: string; code?: string };

/** Where one candidate's time went, in milliseconds. */
export interface CandidateTimings {
  /** Waiting in the server's queue (ms). */
  queuedMs: number;
  /** Rendering on the server (ms). */
  renderMs: number;
  /** From our request to the image bytes in hand (ms). */
  totalMs: number;
}

/**
 * A rendered candidate: the encoded image bytes (`format`: png, jpeg or webp), the seed that
 * reproduces it, the backend that made it and its timings.
 */
export interface Candidate {
  ok: true;
  /** The caller's key (GenerateRequest.keys), or the position "0".."n-1". */
  key: string;
  seed: number;
  /** Position inside a server-side batch (see GenerationParams.batchSize). */
  batchIndex?: number;
  image: Buffer;
  format: "png" | "jpeg" | "webp";
  /** e.g. "comfyui@http://127.0.0.1:8188" (never credentials). */
  backend: string;
  timings: CandidateTimings;
  /** The settings that produced the image, for result.json and the PNG metadata. */
  meta?: CandidateMeta;
}

/** The generation settings of one candidate, as far as the backend knows them. */
export interface RenderSettings {
  checkpoint?: string;
  steps?: number;
  cfgScale?: number;
  sampler?: string;
  scheduler?: string;
  width?: number;
  height?: number;
  negativePrompt?: string;
  /** Anything else the server reported (denoising strength, clip skip …), by A1111's infotext names. */
  other?: Record<string, string | number>;
}

/** What a backend knows about how a candidate was made. */
export interface CandidateMeta {
  settings?: RenderSettings;
  /** A1111: the infotext the server wrote for this image (its "parameters" text). */
  infotext?: string;
  /** ComfyUI: the API-format prompt (workflow) actually queued, with its seed, to embed as the PNG "prompt" chunk. */
  comfyPrompt?: Record<string, unknown>;
  /** ComfyUI: the prompt_id on the server. */
  promptId?: string;
  /** The seed asked for, when the server rendered another one. */
  requestedSeed?: number;
}

/** A candidate that could not be rendered or scored; the same shape in every package. */
export interface FailedCandidate {
  ok: false;
  key: string;
  seed: number;
  backend: string;
  /** best-of's pass (draft-then-refine), when the selector reports it. */
  phase?: "draft" | "final";
  error: PickrankError;
}

/** What Backend.generate() yields per candidate: a Candidate (`ok: true`) or a FailedCandidate (`ok: false`). */
export type Generated = Candidate | FailedCandidate;

/** What check() found: never thrown, always returned. */
export interface HealthReport {
  ok: boolean;
  /** The backend's id (no credentials). */
  backend: string;
  kind: string;
  /** Why it is not ok. */
  error?: ErrorJSON;
  /** The server's version, when it says. */
  version?: string;
  /** The checkpoint the server has loaded (A1111), when it says. */
  checkpoint?: string;
  /** Prompts on the server (everyone's, not only ours), when it says. */
  queue?: { running: number; pending: number };
  /** For a pool: each member's report. */
  members?: HealthReport[];
}

/**
 * A generation server adapter (ComfyUI, Automatic1111, a pool of them) as the selector uses it.
 * generate() throws PickrankError codes such as BACKEND_UNREACHABLE, BACKEND_AUTH, BACKEND_REJECTED,
 * BACKEND_PROTOCOL, BACKEND_STALLED or ABORTED only when nothing can be rendered; per-candidate failures
 * are yielded as FailedCandidate.
 */
export interface Backend {
  /** e.g. "comfyui@http://127.0.0.1:8188" (never credentials). */
  readonly id: string;
  /** "comfyui" | "a1111" | "pool" | registered others. */
  readonly kind: string;
  /** Largest seed this backend accepts; the selector keeps seed + n below it. */
  readonly maxSeed: number;
  /**
   * Most generate() calls this backend usefully works on at once (default: no limit). A pool never
   * gives a member more; Automatic1111 says 1, because its server renders one request at a time.
   */
  readonly maxConcurrency?: number;
  /** Yields as each candidate finishes; throws only when nothing can be done (unreachable, rejected workflow, aborted). */
  generate(req: GenerateRequest): AsyncIterable<Generated>;
  /** Reachability and what the server has; never throws for an unreachable server (ok: false, error). */
  check(signal?: AbortSignal): Promise<HealthReport>;
  /**
   * Everything this backend adds beyond the request that decides the pixels (the ComfyUI workflow,
   * A1111's extra body fields …), as plain JSON: a resumed run must match it to reuse candidates.
   */
  fingerprint(): Record<string, unknown>;
  close(): Promise<void>;
}

/**
 * How to build a backend: its `kind` ("comfyui", "a1111", …), the server URL, optional credentials,
 * the ComfyUI workflow and adapter-specific options.
 */
export interface BackendSpec {
  kind: string;
  url: string;
  /** "user:password" (HTTP Basic) or a full Authorization header value ("Bearer …", "Basic …"). */
  auth?: string;
  /** ComfyUI: the workflow in API format (object, or JSON text). */
  workflow?: unknown;
  options?: Record<string, unknown>;
}

/** Builds a Backend from a BackendSpec; adapters register one per kind. */
export type BackendFactory = (spec: BackendSpec) => Backend;

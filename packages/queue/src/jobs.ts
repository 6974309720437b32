/**
 * What travels through Redis for one render-and-score job: the request (prompt, seed, settings, the
 * model the coordinator scores with) and the result (the image by value or by reference, its PickScore
 * image embedding, the backend's timings and metadata). Credentials of generation servers are never
 * part of either: they stay in the worker's own backend.
 *
 * Job ids are derived from what is rendered (queue, prompt, negative prompt, seed, settings, model), so
 * adding the same job twice is a no-op in BullMQ and a job retried after its worker died still yields
 * one result: one candidate per seed.
 */
import { createHash } from "node:crypto";
import {
  type CandidateMeta,
  type CandidateTimings,
  type ErrorCode,
  type GenerationParams,
  isErrorCode,
  PickrankError,
} from "@pickrank/contract";

/** Default BullMQ queue name (the `--queue-name` flag); one name per worker configuration. */
export const DEFAULT_QUEUE_NAME = "pickrank";
/** Redis key prefix of every pickrank queue. */
export const QUEUE_PREFIX = "pickrank";
/** Largest image carried by value in Redis (bytes); larger ones need shared storage (--shared-dir). */
export const MAX_INLINE_IMAGE_BYTES = 32 * 1024 * 1024;

/** One render-and-score job: one candidate (prompt, seed, settings) and the model to embed it with. */
export interface RenderJobData {
  prompt: string;
  negativePrompt?: string;
  seed: number;
  params: GenerationParams;
  /** modelKey() of the coordinator's model: a worker with another model refuses the job (BAD_MODEL). */
  model: string;
}

/** The image of a result: its bytes (base64) in Redis, or a file in the storage the workers share with the coordinator. */
export type ImagePayload =
  | { by: "value"; base64: string }
  /** `file` is relative to the shared folder (each machine may mount it elsewhere); sha256 of the bytes. */
  | { by: "reference"; file: string; sha256: string; bytes: number };

/** What a worker returns for a job (BullMQ's return value, JSON). */
export interface RenderJobResult {
  seed: number;
  batchIndex?: number;
  format: "png" | "jpeg" | "webp";
  /** The generation server's id (never credentials). */
  backend: string;
  /** The worker's name (host and pid unless --name). */
  worker: string;
  timings: CandidateTimings;
  meta?: CandidateMeta;
  image: ImagePayload;
  /** The L2-normalised PickScore image embedding, float32 little-endian, base64. */
  embedding: string;
  /** Milliseconds the worker spent embedding the image. */
  scoreMs: number;
}

/** Progress a worker reports on a job (BullMQ job progress). */
export interface RenderJobProgress {
  stage: "rendering" | "scoring";
  step?: number;
  steps?: number;
}

/** Keys sorted at every level (undefined values dropped), so equal settings hash equally whatever their order. */
export function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .filter(([, x]) => x !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, canonical(x)]),
    );
  }
  return v;
}

/**
 * The job id of one candidate: "r" + the first 32 hex digits of sha256 over the queue name and the job
 * data (canonical JSON). Equal for every coordinator that asks for the same pixels from the same workers.
 */
export function renderJobId(queueName: string, data: RenderJobData): string {
  const h = createHash("sha256")
    .update(JSON.stringify(canonical({ queue: queueName, ...data })))
    .digest("hex");
  return `r${h.slice(0, 32)}`;
}

/** The identity of a converted model: sha256 of its source files' hashes and its dtype (16 hex digits). */
export function modelKey(manifest: { dtype: string; source: { files: { name: string; sha256: string }[] } }): string {
  const files = [...manifest.source.files].map((f) => `${f.name}:${f.sha256}`).sort();
  return createHash("sha256")
    .update(JSON.stringify({ dtype: manifest.dtype, files }))
    .digest("hex")
    .slice(0, 16);
}

/** float32 LE bytes of an embedding, base64. */
export function encodeEmbedding(e: Float32Array): string {
  return Buffer.from(e.buffer, e.byteOffset, e.byteLength).toString("base64");
}

/**
 * The embedding back from base64 (bit-exact).
 * @throws BACKEND_PROTOCOL when its length is not `dims` float32 values.
 */
export function decodeEmbedding(b64: string, dims: number): Float32Array {
  const buf = Buffer.from(b64, "base64");
  if (buf.byteLength !== dims * 4)
    throw new PickrankError(
      "BACKEND_PROTOCOL",
      `Expected a ${dims}-value image embedding from the worker but received ${buf.byteLength / 4} values`,
    );
  const out = new Float32Array(dims);
  Buffer.from(out.buffer).set(buf);
  return out;
}

/** A job's failure as BullMQ keeps it (failedReason): "CODE: message". */
export function failureReason(e: PickrankError): string {
  return `${e.code}: ${e.message}`;
}

/** The PickrankError back from a failedReason; an unknown shape becomes BACKEND_PROTOCOL. */
export function errorFromReason(reason: string | undefined, seed: number): PickrankError {
  const m = /^([A-Z_]+): ([\s\S]*)$/.exec(reason ?? "");
  const code: ErrorCode = m && isErrorCode(m[1]) ? m[1] : "BACKEND_PROTOCOL";
  const message = m && isErrorCode(m[1]) ? m[2]! : `The worker failed the job for seed ${seed}: ${reason ?? "no reason given"}`;
  return new PickrankError(code, message);
}

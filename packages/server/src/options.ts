/**
 * Options of `createServer` / `pickrank serve`, their defaults, and the safety rule: any host other
 * than a loopback address refuses to start without a token.
 */
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { PickrankError, fsError, invalidParameter } from "@pickrank/contract";
import type { DeviceRequest, Scorer } from "@pickrank/core";

/**
 * Options of createServer / `pickrank serve`; defaults in DEFAULTS. A bad value, or a non-loopback host
 * without a token, is BAD_INPUT.
 */
export interface ServerOptions {
  /** A converted model folder (holds pickrank.json). Ignored when `scorer` is given. */
  model?: string;
  /** A Scorer to serve instead of opening `model` (the caller keeps ownership: close() does not dispose it). */
  scorer?: Scorer;
  /** auto, cpu, webgpu or cuda. Default auto. */
  device?: DeviceRequest;
  /** Address to bind. Default 127.0.0.1; anything but loopback needs a token. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 7865. */
  port?: number;
  /** Bearer token every request must carry. Default: env PICKRANK_TOKEN, else none (loopback only). */
  token?: string;
  /** Images per vision run (the dynamic batch). Default 16. */
  maxBatch?: number;
  /** How long the first image of a batch waits for others while the device is idle, ms. Default 5. */
  maxWaitMs?: number;
  /** Requests admitted at once (in preprocessing, queued or running); past it: 429 BUSY. Default 64. */
  maxQueue?: number;
  /** Largest request body in bytes (JSON or multipart). Default 64 MiB. */
  maxBodyBytes?: number;
  /** Largest width × height of one image. Default 16,777,216 (4096²). */
  maxPixels?: number;
  /** Images (or items) in one request. Default 256. */
  maxImages?: number;
  /** Time to receive a request and answer it, ms; slow clients are cut off. Default 60,000. */
  requestTimeoutMs?: number;
  /** Prompts whose text embedding is kept (LRU). Default 4096. */
  textCacheSize?: number;
  /** Origins allowed by CORS (`*` for any). Default: CORS off. */
  cors?: string[];
  /** Preprocessing worker threads (Scorer option). Default: the Scorer's. */
  preprocessWorkers?: number;
  /** CPU provider threads (Scorer option). */
  threads?: number;
  /** Fastify's logger (pino) on stderr. Default false. */
  logger?: boolean;
}

/** ServerOptions after validation, with every default applied (times in ms, sizes in bytes or pixels). */
export interface ResolvedOptions {
  host: string;
  port: number;
  token: string | undefined;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  maxBodyBytes: number;
  maxPixels: number;
  maxImages: number;
  requestTimeoutMs: number;
  textCacheSize: number;
  cors: string[] | undefined;
  logger: boolean;
}

/**
 * Defaults of ServerOptions: host 127.0.0.1, port 7865, 16 images per vision run, a 5 ms batching
 * window, 64 requests admitted, 64 MiB bodies, 4096×4096 pixels per image, 256 images per request, a
 * 60,000 ms request timeout and 4096 cached prompt embeddings.
 */
export const DEFAULTS = {
  host: "127.0.0.1",
  port: 7865,
  maxBatch: 16,
  maxWaitMs: 5,
  maxQueue: 64,
  maxBodyBytes: 64 * 1024 * 1024,
  maxPixels: 4096 * 4096,
  maxImages: 256,
  requestTimeoutMs: 60_000,
  textCacheSize: 4096,
} as const;

/** Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h.startsWith("::ffff:127.");
}

function intOption(name: string, v: unknown, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw invalidParameter(name, `an integer ≥ ${min}`, v);
  return v;
}

/**
 * Validates options and applies defaults. Throws BAD_INPUT for a bad value, and for a non-loopback
 * host without a token ("Expected --token-file or PICKRANK_TOKEN …").
 */
export function resolveOptions(opts: ServerOptions, env: NodeJS.ProcessEnv = process.env): ResolvedOptions {
  const host = opts.host ?? DEFAULTS.host;
  if (typeof host !== "string" || host === "") throw invalidParameter("--host", "an address to bind, such as 127.0.0.1", host);
  const token = opts.token ?? (env["PICKRANK_TOKEN"] || undefined);
  if (token !== undefined && (typeof token !== "string" || token.trim().length < 16)) {
    throw new PickrankError(
      "BAD_INPUT",
      "Expected a token of at least 16 characters (--token-file or PICKRANK_TOKEN) but received a shorter one",
      {
        details: { parameter: "token", expected: "at least 16 characters" },
      },
    );
  }
  if (!isLoopback(host) && token === undefined) {
    throw new PickrankError(
      "BAD_INPUT",
      `Expected a token (--token-file <file> or env PICKRANK_TOKEN) to listen on ${host}, which is not a loopback address; ` +
        "without one pickrank serve binds 127.0.0.1 only",
      { details: { parameter: "--host", option: "--token-file", expected: "a loopback host, or a token" } },
    );
  }
  if (opts.cors !== undefined && (!Array.isArray(opts.cors) || !opts.cors.every((o) => typeof o === "string" && o !== ""))) {
    throw invalidParameter("--cors", "origins such as https://example.com, or *", opts.cors);
  }
  return {
    host,
    port: intOption("--port", opts.port, DEFAULTS.port, 0),
    token: token?.trim(),
    maxBatch: intOption("--max-batch", opts.maxBatch, DEFAULTS.maxBatch, 1),
    maxWaitMs: intOption("--max-wait-ms", opts.maxWaitMs, DEFAULTS.maxWaitMs, 0),
    maxQueue: intOption("--max-queue", opts.maxQueue, DEFAULTS.maxQueue, 1),
    maxBodyBytes: intOption("--max-body-bytes", opts.maxBodyBytes, DEFAULTS.maxBodyBytes, 1024),
    maxPixels: intOption("--max-pixels", opts.maxPixels, DEFAULTS.maxPixels, 1),
    maxImages: intOption("--max-images", opts.maxImages, DEFAULTS.maxImages, 1),
    requestTimeoutMs: intOption("--request-timeout-ms", opts.requestTimeoutMs, DEFAULTS.requestTimeoutMs, 1),
    textCacheSize: intOption("--text-cache", opts.textCacheSize, DEFAULTS.textCacheSize, 1),
    cors: opts.cors,
    logger: opts.logger ?? false,
  };
}

/** Reads a token file (first line, trimmed). FILESYSTEM/NOT_FOUND naming --token-file; BAD_INPUT when empty. */
export async function readTokenFile(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, { path: file, option: "--token-file", action: "read the token file" });
  }
  const token = text.split(/\r?\n/)[0]?.trim() ?? "";
  if (token === "") throw invalidParameter("--token-file", "a file whose first line is the token", `${file} (empty)`);
  return token;
}

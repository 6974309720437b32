/**
 * @pickrank/server: `pickrank serve` as a library. One warm PickScore model behind HTTP, with
 * dynamic batching across requests, an OpenAPI 3.1 document, Prometheus metrics, and safe defaults
 * (loopback unless a token is set, limits on bodies, pixels, images and queued requests).
 */
export { createServer, startServer, SERVER_VERSION, type PickrankServer } from "./server.ts";
export { DEFAULTS, isLoopback, readTokenFile, resolveOptions, type ResolvedOptions, type ServerOptions } from "./options.ts";
export { openApiDocument } from "./openapi.ts";
/** `checkListenAddress(host, port)`: rejects with CONFLICT (port in use) or BAD_INPUT before a model load. */
export { checkListenAddress, listenError } from "./listen.ts";
export { Batcher, type BatcherOptions, type RunBatch, type RunInfo } from "./batcher.ts";
export type { Engine, ScoreJob, ScoreOutcome, Timings } from "./engine.ts";
export {
  ErrorResponseSchema,
  HealthResponseSchema,
  ImageRefSchema,
  ModelsResponseSchema,
  RankRequestSchema,
  RankResponseSchema,
  ScoreRequestSchema,
  ScoreResponseSchema,
  type ImageRef,
  type RankRequest,
  type ScoreRequest,
} from "./schemas.ts";

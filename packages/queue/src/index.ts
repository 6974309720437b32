export { redisConnection, redactRedisUrl, usesTls, type RedisConnection } from "./connection.ts";
export {
  DEFAULT_QUEUE_NAME,
  MAX_INLINE_IMAGE_BYTES,
  QUEUE_PREFIX,
  decodeEmbedding,
  encodeEmbedding,
  errorFromReason,
  failureReason,
  modelKey,
  renderJobId,
  type ImagePayload,
  type RenderJobData,
  type RenderJobProgress,
  type RenderJobResult,
} from "./jobs.ts";
export { RenderWorker, promptsQueueName, type RenderWorkerOptions, type WorkerEvent, type WorkerScorer } from "./worker.ts";
export { QueueBackend, withWorkerEmbeddings, type QueueBackendOptions } from "./coordinator.ts";

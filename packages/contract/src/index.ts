export { abortedError, nap, sleep, throwIfAborted } from "./abort.ts";
export type {
  Backend,
  BackendEvent,
  BackendFactory,
  BackendSpec,
  Candidate,
  CandidateMeta,
  CandidateTimings,
  RenderSettings,
  FailedCandidate,
  GenerateRequest,
  Generated,
  GenerationParams,
  HealthReport,
} from "./backend.ts";
export { Channel } from "./channel.ts";
export {
  describeValue,
  ERROR_CODES,
  ERROR_TABLE,
  type ErrorCode,
  type ErrorDetailsByCode,
  type ErrorJSON,
  EXIT,
  type ExitCode,
  invalidParameter,
  isErrorCode,
  isPickrankError,
  PickrankError,
  type PickrankErrorOptions,
  toPickrankError,
} from "./errors.ts";
export { type FsErrorContext, fsError, makeDir, pathExists, tempSibling, writeFileAtomic } from "./fs.ts";
export { acquireLock, type HeldLock, type LockHolder, type LockOptions, pidAlive, readLockHolder, withLock } from "./lock.ts";
export { retry, type RetryOptions } from "./retry.ts";
export { SilenceTimer } from "./silence.ts";

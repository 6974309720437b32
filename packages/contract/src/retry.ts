/**
 * One retry policy for every network call (hub downloads, generation servers): exponential backoff
 * through p-retry (a maintained, typed, dependency-light library), with a server's Retry-After honoured.
 */
import pRetry from "p-retry";
import { sleep } from "./abort.ts";

/**
 * The retry policy of retry(): retry count, exponential backoff in ms (default factor 2, delay capped
 * at 10 000 ms) and which failures to retry; a server's Retry-After (capped at 30 s) wins over a shorter backoff.
 */
export interface RetryOptions {
  /** Attempts after the first (0: no retry). */
  retries: number;
  /** Delay before the first retry (ms); each next one multiplies by `factor`. */
  minDelayMs: number;
  /** Cap on one delay (ms; default 10 000). */
  maxDelayMs?: number;
  /** Growth of the delay per retry (default 2: exponential; 1: constant). */
  factor?: number;
  signal?: AbortSignal;
  /** Whether this failure may go away (default: every error). Not retried: the error is thrown as it is. */
  shouldRetry?: (error: unknown, attempt: number) => boolean;
  /** A delay the server asked for (Retry-After, ms) that wins over a shorter backoff (capped at 30 s). */
  retryAfterMs?: (error: unknown) => number | undefined;
  /** Told before each wait: the failure, the attempt that failed (1-based). */
  onRetry?: (error: unknown, attempt: number) => void;
}

/** Largest wait a server's Retry-After can impose on us. */
const MAX_RETRY_AFTER_MS = 30_000;

/**
 * Runs `fn(attempt)` (attempt 1, 2, …) until it resolves, a failure is not retryable, the retries are
 * spent (the last error is thrown as it is) or the signal fires (its reason is thrown).
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const factor = o.factor ?? 2;
  const maxDelay = o.maxDelayMs ?? 10_000;
  let attempt = 0;
  return pRetry(
    async () => {
      attempt++;
      return fn(attempt);
    },
    {
      retries: o.retries,
      factor,
      minTimeout: o.minDelayMs,
      maxTimeout: maxDelay,
      randomize: false,
      ...(o.signal ? { signal: o.signal } : {}),
      shouldRetry: ({ error, attemptNumber }) => (o.shouldRetry ? o.shouldRetry(error, attemptNumber) : true),
      onFailedAttempt: async ({ error, attemptNumber, retriesLeft }) => {
        if (retriesLeft <= 0 || (o.shouldRetry && !o.shouldRetry(error, attemptNumber))) return;
        o.onRetry?.(error, attemptNumber);
        const asked = o.retryAfterMs?.(error);
        const backoff = Math.min(maxDelay, o.minDelayMs * factor ** (attemptNumber - 1));
        if (asked !== undefined && asked > backoff) await sleep(Math.min(MAX_RETRY_AFTER_MS, asked) - backoff, o.signal);
      },
    },
  );
}

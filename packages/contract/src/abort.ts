/** Cancellation: one "aborted" error, one abortable sleep. */
import { setTimeout as delay } from "node:timers/promises";
import { isPickrankError, PickrankError } from "./errors.ts";

/**
 * The ABORTED error for `what` ("best-of", "generation on comfyui@…"). A reason that already is an
 * ABORTED PickrankError is returned as it is; any other reason becomes the cause, and its message is
 * appended when it says more than "aborted".
 */
export function abortedError(what: string, reason?: unknown, details?: Record<string, unknown>): PickrankError<"ABORTED"> {
  if (isPickrankError(reason) && reason.code === "ABORTED") return reason as PickrankError<"ABORTED">;
  const why = reason instanceof Error && reason.name !== "AbortError" ? `: ${reason.message}` : "";
  return new PickrankError("ABORTED", `The ${what} was cancelled${why}`, { cause: reason, ...(details ? { details } : {}) });
}

/** Throws ABORTED (see abortedError) when the signal has fired. */
export function throwIfAborted(signal: AbortSignal | undefined, what = "operation"): void {
  if (signal?.aborted) throw abortedError(what, signal.reason);
}

/**
 * Waits `ms` milliseconds (node:timers/promises); rejects with the signal's reason (not a generic
 * AbortError) when it fires first, so callers see why they were stopped.
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw signal.reason;
  try {
    await delay(ms, undefined, signal ? { signal } : undefined);
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw e;
  }
}

/**
 * Waits until `wake` settles, `ms` milliseconds pass or the signal fires, whichever comes first; never
 * rejects (a loop that naps checks its signal itself). Unlike racing `wake` against sleep(ms, signal),
 * nothing is left behind when `wake` wins: the timer is cleared and the listener on `signal` removed, so
 * a loop that naps many times holds at most one listener on the signal (racing sleep left one per nap
 * until its timer ran out, and Node warned of a leak past ten).
 */
export function nap(ms: number, wake: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    wake.then(done, done);
  });
}

/**
 * The one error type of pickrank. Every failure that reaches a user or a caller carries a stable
 * `code` (programs switch on it; the server maps it to an HTTP status), a message that says what was
 * wrong and what was expected, and the underlying `cause` when there is one.
 */
export const ERROR_CODES = [
  "BAD_INPUT", // an argument or option of the wrong shape or value
  "BAD_IMAGE", // a file that is not a decodable image, truncated, or too large
  "BAD_MODEL", // a model folder, config or weights file that is missing, corrupt or unsupported
  "BAD_TOKENIZER", // tokenizer files missing or malformed
  "DEVICE_UNAVAILABLE", // an execution provider that cannot start
  "INFERENCE_FAILED", // ONNX Runtime failed while running a graph
  "DOWNLOAD_FAILED", // the hub could not be reached or answered with an error
  "INTEGRITY", // a downloaded file whose size or hash does not match the hub's metadata
  "BACKEND_UNREACHABLE", // a generation server that cannot be reached
  "BACKEND_REJECTED", // a generation server that answered with an error (400 with node_errors, 4xx/5xx)
  "BACKEND_PROTOCOL", // a generation server that answered something we cannot read
  "TIMEOUT",
  "ABORTED",
  "NOT_FOUND",
  "CONFLICT", // an output that already exists and would be overwritten
  "TOO_FEW_CANDIDATES",
  "INTERNAL",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface PickrankErrorOptions {
  cause?: unknown;
  /** Structured details for programs (the failing node ids, the URL, the expected hash …). */
  details?: Record<string, unknown>;
}

export class PickrankError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: PickrankErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PickrankError";
    this.code = code;
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

export function isPickrankError(e: unknown): e is PickrankError {
  return e instanceof PickrankError;
}

/** Wraps anything thrown into a PickrankError, keeping an existing code and the original as cause. */
export function toPickrankError(e: unknown, code: ErrorCode = "INTERNAL", context?: string): PickrankError {
  if (e instanceof PickrankError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new PickrankError(code, context ? `${context}: ${msg}` : msg, { cause: e });
}

/** Describes a received value the way sharp does: "1.5 of type number". */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (typeof v === "string") return `${JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v)} of type string`;
  if (typeof v === "object") return `${Array.isArray(v) ? "array" : "object"}`;
  return `${String(v)} of type ${typeof v}`;
}

/** "Expected positive integer for width but received 1.5 of type number". */
export function invalidParameter(name: string, expected: string, received: unknown): PickrankError {
  return new PickrankError("BAD_INPUT", `Expected ${expected} for ${name} but received ${describeValue(received)}`, {
    details: { parameter: name, expected },
  });
}

/** Throws ABORTED when the signal has fired, keeping the abort reason as the cause. */
export function throwIfAborted(signal: AbortSignal | undefined, what = "operation"): void {
  if (signal?.aborted) {
    throw new PickrankError("ABORTED", `The ${what} was cancelled`, { cause: signal.reason });
  }
}

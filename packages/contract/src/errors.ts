/**
 * The one error type of pickrank and its closed table of codes. Every failure that reaches a user or
 * a caller carries a stable `code` (programs switch on it), a message that says what was wrong and
 * what was expected, typed `details` for programs, and the underlying `cause` when there is one.
 * The table below is the single place that says what each code means to a shell (exit code) and to
 * an HTTP client (status), and whether trying again may help (tRPC's `TRPCError` code table).
 */

/** Exit codes of the `pickrank` command. */
export const EXIT = {
  OK: 0,
  /** Anything that failed and is not one of the below. */
  FAILURE: 1,
  /** Bad arguments or input files: fix the command line. */
  USAGE: 2,
  /** Part of the work was done (fewer candidates than asked, some files unscored); the rest is reported. */
  PARTIAL: 3,
  /** Interrupted (Ctrl-C, SIGTERM, SIGHUP); what was done is kept and the run can be resumed. */
  INTERRUPTED: 130,
} as const;

/** A CLI exit status from EXIT: 0 ok, 1 failure, 2 usage, 3 partial, 130 interrupted. */
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface CodeInfo {
  /** Exit code of the CLI when this error ends a command. */
  exit: ExitCode;
  /** HTTP status of `pickrank serve` for this error. */
  http: number;
  /** Whether the same call may succeed later unchanged. */
  retryable: boolean;
  /** What the code means, for docs and `--help`. */
  meaning: string;
}

/** The code table: code → exit code, HTTP status, retryable, meaning. */
export const ERROR_TABLE = {
  BAD_INPUT: { exit: EXIT.USAGE, http: 400, retryable: false, meaning: "an argument, option or request field of the wrong shape or value" },
  BAD_IMAGE: {
    exit: EXIT.USAGE,
    http: 422,
    retryable: false,
    meaning: "a file or buffer that is not a decodable image, is truncated, or passes the pixel limit",
  },
  BAD_MODEL: {
    exit: EXIT.FAILURE,
    http: 500,
    retryable: false,
    meaning: "a model folder, config or weights file that is missing, corrupt or unsupported",
  },
  BAD_TOKENIZER: { exit: EXIT.FAILURE, http: 500, retryable: false, meaning: "tokenizer files missing or malformed" },
  DEVICE_UNAVAILABLE: { exit: EXIT.FAILURE, http: 503, retryable: false, meaning: "an execution provider that cannot start" },
  INFERENCE_FAILED: { exit: EXIT.FAILURE, http: 500, retryable: false, meaning: "ONNX Runtime failed while running a graph" },
  DOWNLOAD_FAILED: {
    exit: EXIT.FAILURE,
    http: 502,
    retryable: true,
    meaning: "the model hub could not be reached or answered with an error",
  },
  INTEGRITY: {
    exit: EXIT.FAILURE,
    http: 502,
    retryable: true,
    meaning: "a downloaded file whose size or hash does not match the hub's metadata",
  },
  BACKEND_UNREACHABLE: { exit: EXIT.FAILURE, http: 502, retryable: true, meaning: "a generation server that cannot be reached" },
  BACKEND_AUTH: {
    exit: EXIT.FAILURE,
    http: 502,
    retryable: false,
    meaning: "a generation server that refused the credentials given (or asked for some)",
  },
  BACKEND_REJECTED: {
    exit: EXIT.FAILURE,
    http: 502,
    retryable: false,
    meaning: "a generation server that refused the request (a 400 with node_errors, other 4xx/5xx)",
  },
  BACKEND_PROTOCOL: {
    exit: EXIT.FAILURE,
    http: 502,
    retryable: false,
    meaning: "a generation server that answered something that does not follow its protocol",
  },
  BACKEND_STALLED: {
    exit: EXIT.FAILURE,
    http: 504,
    retryable: true,
    meaning: "a generation server that stopped answering, or whose render of our prompt stopped progressing",
  },
  TIMEOUT: { exit: EXIT.FAILURE, http: 504, retryable: true, meaning: "an operation that ran past its time limit" },
  ABORTED: { exit: EXIT.INTERRUPTED, http: 499, retryable: false, meaning: "cancelled by the caller (signal, Ctrl-C, SIGTERM)" },
  CLOSED: {
    exit: EXIT.FAILURE,
    http: 503,
    retryable: false,
    meaning: "an object (backend, pool, scorer, server) used after close() or while shutting down",
  },
  NOT_FOUND: { exit: EXIT.USAGE, http: 404, retryable: false, meaning: "a file, folder, model or route that does not exist" },
  FILESYSTEM: {
    exit: EXIT.FAILURE,
    http: 500,
    retryable: false,
    meaning: "a path that cannot be read or written (permission, not a folder, disk full, read-only)",
  },
  CONFLICT: {
    exit: EXIT.FAILURE,
    http: 409,
    retryable: false,
    meaning: "an output that exists and would be overwritten, or is in use by another run",
  },
  TOO_FEW_CANDIDATES: { exit: EXIT.FAILURE, http: 502, retryable: true, meaning: "fewer candidates survived than the minimum asked for" },
  PARTIAL: { exit: EXIT.PARTIAL, http: 207, retryable: true, meaning: "a run that did part of what was asked (the rest is listed)" },
  UNAUTHORIZED: { exit: EXIT.FAILURE, http: 401, retryable: false, meaning: "a missing or wrong token for pickrank serve" },
  PAYLOAD_TOO_LARGE: { exit: EXIT.USAGE, http: 413, retryable: false, meaning: "a request body, image or list over the server's limits" },
  BUSY: { exit: EXIT.FAILURE, http: 429, retryable: true, meaning: "too much queued work; try again after the time given" },
  INTERNAL: { exit: EXIT.FAILURE, http: 500, retryable: false, meaning: "a bug: something pickrank did not expect" },
} as const satisfies Record<string, CodeInfo>;

/** One of the error codes of ERROR_TABLE (BAD_INPUT, NOT_FOUND, TIMEOUT …). */
export type ErrorCode = keyof typeof ERROR_TABLE;

/** Every code, in table order. */
export const ERROR_CODES = Object.keys(ERROR_TABLE) as ErrorCode[];

type Open = Record<string, unknown>;

/** Details each code carries (all optional: a code may be raised where only some are known). */
export interface ErrorDetailsByCode {
  BAD_INPUT: Open & { parameter?: string; option?: string; expected?: string };
  BAD_IMAGE: Open & { file?: string; index?: number; format?: string; width?: number; height?: number; maxPixels?: number };
  BAD_MODEL: Open & { dir?: string; file?: string };
  BAD_TOKENIZER: Open & { dir?: string; file?: string };
  DEVICE_UNAVAILABLE: Open & { device?: string; reason?: string };
  INFERENCE_FAILED: Open & { device?: string; graph?: string };
  DOWNLOAD_FAILED: Open & { url?: string; status?: number; repo?: string; file?: string };
  INTEGRITY: Open & { file?: string; expected?: string; actual?: string };
  BACKEND_UNREACHABLE: Open & { backend?: string; url?: string };
  BACKEND_AUTH: Open & { backend?: string; status?: number };
  BACKEND_REJECTED: Open & { backend?: string; status?: number; route?: string };
  BACKEND_PROTOCOL: Open & { backend?: string; route?: string };
  BACKEND_STALLED: Open & { backend?: string; promptId?: string; stallMs?: number };
  TIMEOUT: Open & { timeoutMs?: number };
  ABORTED: Open & { backend?: string };
  CLOSED: Open & { what?: string };
  NOT_FOUND: Open & { path?: string; option?: string };
  FILESYSTEM: Open & { path?: string; option?: string; errno?: string; syscall?: string };
  CONFLICT: Open & { dir?: string; pid?: number };
  TOO_FEW_CANDIDATES: Open & { survived?: number; asked?: number; minSurvivors?: number };
  PARTIAL: Open & { done?: number; asked?: number };
  UNAUTHORIZED: Open;
  PAYLOAD_TOO_LARGE: Open & { limit?: number; received?: number };
  BUSY: Open & { retryAfterS?: number };
  INTERNAL: Open;
}

/** Options of a PickrankError: the cause it wraps and the code's structured details. */
export interface PickrankErrorOptions<C extends ErrorCode = ErrorCode> {
  cause?: unknown;
  /** Structured details for programs (the failing node ids, the URL, the expected hash …). */
  details?: ErrorDetailsByCode[C];
}

/** The serialized form, as `--json` output and the server's `{error: …}` body carry it. */
export interface ErrorJSON {
  code: ErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * The one error type of pickrank: a `code` from ERROR_TABLE, a one-line message and optional
 * structured `details`. The code decides the CLI exit code, the HTTP status and whether a retry may help.
 */
export class PickrankError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly details: ErrorDetailsByCode[C] | undefined;

  constructor(code: C, message: string, options: PickrankErrorOptions<C> = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "PickrankError";
    this.code = code;
    this.details = options.details;
  }

  /** Exit code of the CLI for this error (the code table). */
  get exitCode(): ExitCode {
    return ERROR_TABLE[this.code].exit;
  }

  /** HTTP status for this error (the code table). */
  get httpStatus(): number {
    return ERROR_TABLE[this.code].http;
  }

  /** Whether the same call may succeed later (the code table). */
  get retryable(): boolean {
    return ERROR_TABLE[this.code].retryable;
  }

  toJSON(): ErrorJSON {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Whether `e` is a PickrankError (an instanceof check). */
export function isPickrankError(e: unknown): e is PickrankError {
  return e instanceof PickrankError;
}

/** Whether `v` is a string naming a code of ERROR_TABLE. */
export function isErrorCode(v: unknown): v is ErrorCode {
  return typeof v === "string" && Object.hasOwn(ERROR_TABLE, v);
}

/**
 * Wraps anything thrown into a PickrankError, keeping an existing code and the original as cause.
 * `code` is what an unknown failure at this site means (INTERNAL when the site cannot say).
 */
export function toPickrankError(e: unknown, code: ErrorCode = "INTERNAL", context?: string): PickrankError {
  if (e instanceof PickrankError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new PickrankError(code, context ? `${context}: ${msg}` : msg, { cause: e });
}

/** Describes a received value the way sharp does: "1.5 of type number". */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "undefined";
  if (typeof v === "string") return `${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)} of type string`;
  if (typeof v === "object") return `${Array.isArray(v) ? "array" : "object"}`;
  return `${String(v)} of type ${typeof v}`;
}

/**
 * BAD_INPUT saying "Expected positive integer for width but received 1.5 of type number".
 * `name` is the parameter as the caller wrote it (an option name for the CLI, a field for the API).
 */
export function invalidParameter(name: string, expected: string, received: unknown): PickrankError<"BAD_INPUT"> {
  return new PickrankError("BAD_INPUT", `Expected ${expected} for ${name} but received ${describeValue(received)}`, {
    details: { parameter: name, expected },
  });
}

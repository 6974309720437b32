/**
 * Everything thrown while serving a request → one PickrankError → `{error:{code,message,details}}`
 * with the HTTP status of the code table (ERROR_TABLE). Fastify's and @fastify/multipart's own
 * errors (body too large, bad JSON, wrong content type, truncated form) get the code they mean.
 */
import { PickrankError, isPickrankError, toPickrankError, type ErrorCode } from "@pickrank/contract";
import type { FastifyReply } from "fastify";
import type { z } from "zod";

interface FrameworkError {
  code?: string;
  statusCode?: number;
  message?: string;
}

const FRAMEWORK_CODES: Record<string, { code: ErrorCode; say: (e: FrameworkError, limits: Limits) => string }> = {
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: "PAYLOAD_TOO_LARGE",
    say: (_e, l) => `Expected a request body of at most ${l.maxBodyBytes} bytes (the server's --max-body-bytes) but received more`,
  },
  FST_REQ_FILE_TOO_LARGE: {
    code: "PAYLOAD_TOO_LARGE",
    say: (_e, l) => `Expected file parts of at most ${l.maxBodyBytes} bytes (the server's --max-body-bytes) but one is larger`,
  },
  FST_FILES_LIMIT: {
    code: "PAYLOAD_TOO_LARGE",
    say: (_e, l) => `Expected at most ${l.maxImages} images in one request (the server's --max-images) but received more`,
  },
  FST_PARTS_LIMIT: { code: "PAYLOAD_TOO_LARGE", say: () => "Expected fewer multipart parts in one request" },
  FST_FIELDS_LIMIT: { code: "PAYLOAD_TOO_LARGE", say: () => "Expected fewer multipart text fields in one request" },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: "BAD_INPUT",
    say: (e) => `Expected Content-Type application/json or multipart/form-data but received ${mediaType(e.message)}`,
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: { code: "BAD_INPUT", say: () => "Expected a JSON body but the body is empty" },
  FST_ERR_CTP_INVALID_JSON_BODY: { code: "BAD_INPUT", say: (e) => `Expected a JSON body but it does not parse: ${e.message ?? ""}` },
  FST_INVALID_MULTIPART_CONTENT_TYPE: { code: "BAD_INPUT", say: () => "Expected a multipart/form-data body with a boundary" },
};

export interface Limits {
  maxBodyBytes: number;
  maxImages: number;
}

function mediaType(message: string | undefined): string {
  const m = /Content-Type: (.*)$/i.exec(message ?? "");
  return m?.[1] ? m[1] : "an unsupported type";
}

/** Any error of a request → a PickrankError with the code it means. */
export function normalizeError(e: unknown, limits: Limits): PickrankError {
  if (isPickrankError(e)) return e;
  const fe = (e ?? {}) as FrameworkError;
  const known = fe.code ? FRAMEWORK_CODES[fe.code] : undefined;
  if (known) return new PickrankError(known.code, known.say(fe, limits), { cause: e });
  if (e instanceof SyntaxError)
    return new PickrankError("BAD_INPUT", `Expected a JSON body but it does not parse: ${e.message}`, { cause: e });
  if (typeof fe.statusCode === "number" && fe.statusCode === 413)
    return new PickrankError("PAYLOAD_TOO_LARGE", fe.message ?? "Request too large", { cause: e });
  if (typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    // Busboy's "Unexpected end of form" (a truncated multipart body) and the like.
    return new PickrankError("BAD_INPUT", `Expected a complete, well-formed request body but: ${fe.message ?? "it could not be read"}`, {
      cause: e,
    });
  }
  if (e instanceof Error && /Unexpected end of (form|multipart)|Malformed part header|Multipart: Boundary not found/i.test(e.message)) {
    return new PickrankError("BAD_INPUT", `Expected a complete multipart/form-data body but: ${e.message}`, { cause: e });
  }
  return toPickrankError(e, "INTERNAL");
}

/** A zod failure → BAD_INPUT naming the field: "Expected … for images[0] but …". */
export function zodError(error: z.ZodError, what: string): PickrankError<"BAD_INPUT"> {
  const issues = error.issues.slice(0, 5).map((i) => ({ path: formatPath(i.path), message: i.message }));
  const first = issues[0];
  const where = first?.path ? `${first.path}` : "the body";
  return new PickrankError("BAD_INPUT", `Expected ${what}; ${where}: ${first?.message ?? "invalid"}`, {
    details: { parameter: where, expected: what, issues },
  });
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((s, k) => (typeof k === "number" ? `${s}[${k}]` : s ? `${s}.${String(k)}` : String(k)), "");
}

/** Sends an error as `{error:{code,message,details}}` with its table status (and Retry-After for BUSY). */
export function sendError(reply: FastifyReply, err: PickrankError): FastifyReply {
  if (err.code === "BUSY") reply.header("retry-after", String((err.details as { retryAfterS?: number } | undefined)?.retryAfterS ?? 1));
  if (err.code === "UNAUTHORIZED") reply.header("www-authenticate", 'Bearer realm="pickrank"');
  const body =
    err.details === undefined ? { code: err.code, message: err.message } : { code: err.code, message: err.message, details: err.details };
  return reply.code(err.httpStatus).type("application/json; charset=utf-8").send({ error: body });
}

import { PickrankError, SilenceTimer, abortedError, invalidParameter, isPickrankError, retry } from "@pickrank/contract";

/** Where a server lives, with the credentials split off so they never reach ids, logs or errors. */
export interface Endpoint {
  /** Base URL without credentials, query or trailing slash ("http://host:8188" or "http://host/api"). */
  base: string;
  /** Authorization header value, when the URL or the auth option carried credentials. */
  authorization?: string;
}

/** Hides "user:pass@" in anything we might print: "http://a:b@host" → "http://***@host". */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
}

/** Where to put credentials instead, for messages. */
export const AUTH_HINT = "the auth option (on the command line: --auth-file <file>, the PICKRANK_AUTH environment variable or --auth)";

function decodeUserinfo(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch (e) {
    // Never echo the value: it is a password.
    throw new PickrankError(
      "BAD_INPUT",
      `Expected a percent-encoded ${what} in the URL's user:password but it holds a "%" that starts no %XX escape; write "%" as "%25" ` +
        `(http://user:50%25off@host), or pass the credentials through ${AUTH_HINT} so they need no escaping`,
      { cause: e, details: { parameter: "url", expected: "percent-encoded user:password" } },
    );
  }
}

/** The Authorization header value for `auth`: a value with a scheme ("Bearer x", "Basic x") as is, "user:password" as HTTP Basic. */
export function authorizationHeader(auth: string): string {
  return /^[A-Za-z][\w-]*\s+\S/.test(auth) && !/^[^:\s]+:/.test(auth) ? auth : `Basic ${Buffer.from(auth).toString("base64")}`;
}

/**
 * Splits a server URL into its base and an Authorization header. Credentials come from
 * "http://user:pass@host" (percent-encoded) or `auth` ("user:password" or a full header value; it
 * wins over the URL's). Throws BAD_INPUT for anything but an http(s) URL, a bad "%" escape in the
 * credentials, or an empty auth; messages never contain the credentials.
 */
export function parseEndpoint(url: unknown, auth: unknown, kind: string): Endpoint {
  if (typeof url !== "string" || url === "") throw invalidParameter("url", `an http:// or https:// URL of the ${kind} server`, url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw invalidParameter("url", `an http:// or https:// URL of the ${kind} server`, redactUrl(url));
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw invalidParameter("url", `an http:// or https:// URL of the ${kind} server`, redactUrl(url));
  }
  let authorization: string | undefined;
  if (u.username !== "" || u.password !== "") {
    const user = decodeUserinfo(u.username, "user name");
    const pass = decodeUserinfo(u.password, "password");
    authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    u.username = "";
    u.password = "";
  }
  if (auth !== undefined) {
    if (typeof auth !== "string" || auth.trim() === "") {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected "user:password" or a full Authorization header value for auth but received ` +
          `${auth === "" ? "an empty string" : typeof auth}`,
        { details: { parameter: "auth" } },
      );
    }
    authorization = authorizationHeader(auth.trim());
  }
  u.search = "";
  u.hash = "";
  const base = u.toString().replace(/\/+$/, "");
  return authorization === undefined ? { base } : { base, authorization };
}

export interface HttpOptions {
  /** Per-request time limit (ms; default 30000). */
  timeoutMs: number;
  /** Extra attempts for idempotent requests (GET) that failed to connect, timed out or got a 5xx/429 (default 2). */
  retries: number;
  /** Delay before the first retry (ms; default 250); each next one doubles (contract retry()). */
  retryDelayMs: number;
}

export interface RequestOptions {
  query?: Record<string, string>;
  json?: unknown;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
  retries?: number;
  /** "json" parses the body, "bytes" returns it raw, "none" drains it. */
  expect?: "json" | "bytes" | "none";
}

/** Reads a server's error body into one line; each backend knows its own error shape. */
export type ErrorDescriber = (status: number, body: string) => { message: string; details?: Record<string, unknown> };

/** Failures that may pass if the same request is sent again. */
function transient(e: unknown): boolean {
  if (!isPickrankError(e)) return false;
  if (e.code === "BACKEND_UNREACHABLE" || e.code === "TIMEOUT") return true;
  const status = Number(e.details?.status);
  return e.code === "BACKEND_REJECTED" && (status >= 500 || status === 429);
}

/**
 * A thin fetch wrapper: one place that turns connection failures (BACKEND_UNREACHABLE), time limits
 * (TIMEOUT), cancellation (ABORTED), refused credentials (BACKEND_AUTH, HTTP 401/403), other HTTP
 * errors (BACKEND_REJECTED) and unreadable bodies (BACKEND_PROTOCOL) into PickrankErrors naming the
 * backend, the route and the server's words. Retries transient failures with contract retry().
 */
export class HttpClient {
  /** When the server last answered a request successfully (ms since epoch; 0 before any): proof it is alive. */
  lastAnswerAt = 0;

  constructor(
    readonly endpoint: Endpoint,
    /** "comfyui@http://host:8188", used in every message. */
    readonly who: string,
    readonly opts: HttpOptions,
    private readonly describe: ErrorDescriber,
  ) {}

  url(path: string, query?: Record<string, string>): string {
    const qs = query && Object.keys(query).length > 0 ? `?${new URLSearchParams(query).toString()}` : "";
    return `${this.endpoint.base}${path}${qs}`;
  }

  headers(extra?: Record<string, string>): Record<string, string> {
    const h: Record<string, string> = { ...extra };
    if (this.endpoint.authorization !== undefined) h.authorization = this.endpoint.authorization;
    return h;
  }

  /** One request; GETs are retried (`retries`, exponential from `retryDelayMs`) on transient failures. */
  async request<T = unknown>(method: "GET" | "POST", path: string, o: RequestOptions = {}): Promise<T> {
    const retries = o.retries ?? (method === "GET" ? this.opts.retries : 0);
    try {
      return (await retry(() => this.once(method, path, o), {
        retries,
        minDelayMs: this.opts.retryDelayMs,
        maxDelayMs: 5000,
        ...(o.signal ? { signal: o.signal } : {}),
        shouldRetry: (e) => transient(e) && !o.signal?.aborted,
        retryAfterMs: (e) => (isPickrankError(e) && typeof e.details?.retryAfterMs === "number" ? e.details.retryAfterMs : undefined),
      })) as T;
    } catch (e) {
      if (o.signal?.aborted && !isPickrankError(e)) throw abortedRequest(this.who, method, path, o.signal.reason);
      throw e;
    }
  }

  private failure(e: unknown, route: string, timeoutMs: number, timedOut: boolean, signal: AbortSignal | undefined): PickrankError {
    if (signal?.aborted) return abortedRequest(this.who, route.split(" ")[0]!, route.split(" ")[1]!, signal.reason);
    if (timedOut) {
      return new PickrankError(
        "TIMEOUT",
        `${this.who} did not answer ${route} within ${timeoutMs} ms (raise the backend's timeoutMs if the server is just slow)`,
        {
          cause: e,
          details: { backend: this.who, route, timeoutMs },
        },
      );
    }
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
    const why = cause instanceof Error ? cause.message : String(cause);
    return new PickrankError(
      "BACKEND_UNREACHABLE",
      `${this.who} could not be reached for ${route}: ${why} (is the server running and the URL right?)`,
      {
        cause: e,
        details: { backend: this.who, route },
      },
    );
  }

  private httpError(res: Response, text: string, route: string): PickrankError {
    const status = res.status;
    const d = this.describe(status, text);
    if (status === 401 || status === 403) return authError(this.who, route, status, d.message, this.endpoint.authorization !== undefined);
    const retryAfter = Number(res.headers.get("retry-after"));
    const details: Record<string, unknown> = { backend: this.who, route, status, ...d.details };
    if (Number.isFinite(retryAfter) && retryAfter > 0) details.retryAfterMs = retryAfter * 1000;
    return new PickrankError("BACKEND_REJECTED", `${this.who} rejected ${route} with HTTP ${status}: ${d.message}`, { details });
  }

  private async once(method: "GET" | "POST", path: string, o: RequestOptions): Promise<unknown> {
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs;
    // Like AbortSignal.timeout(timeoutMs), but time this process itself was held up (a blocked event loop, a
    // starved CPU) does not count as the server's: an answer that sat unread meanwhile is not a timeout.
    const timeout = new AbortController();
    const timer = new SilenceTimer(timeoutMs, () => timeout.abort(new DOMException("The operation timed out", "TimeoutError")));
    timer.restart();
    const signal = o.signal ? AbortSignal.any([o.signal, timeout.signal]) : timeout.signal;
    const route = `${method} ${path}`;
    let res: Response;
    let body: Buffer;
    try {
      const init: RequestInit = {
        method,
        headers: this.headers(o.json === undefined ? undefined : { "content-type": "application/json" }),
        signal,
      };
      if (o.json !== undefined) init.body = JSON.stringify(o.json);
      res = await fetch(this.url(path, o.query), init);
      // A connection cut while the body streams is the same failure as one cut before the headers.
      body = Buffer.from(await res.arrayBuffer());
      if (res.ok) this.lastAnswerAt = Date.now();
    } catch (e) {
      throw this.failure(e, route, timeoutMs, timeout.signal.aborted, o.signal);
    } finally {
      timer.clear();
    }
    if (!res.ok) throw this.httpError(res, body.toString("utf8"), route);
    if (o.expect === "bytes") return body;
    if (o.expect === "none") return undefined;
    const text = body.toString("utf8");
    try {
      return JSON.parse(text);
    } catch (e) {
      throw protocolError(this.who, route, `something that is not JSON (${preview(text)})`, "JSON", e);
    }
  }
}

/**
 * BACKEND_AUTH for an HTTP 401/403 (or a refused WebSocket upgrade): the credentials given were
 * refused, or the server wants some and none were given. Never contains the credentials.
 */
export function authError(
  who: string,
  route: string,
  status: number,
  serverWords: string,
  hadCredentials: boolean,
): PickrankError<"BACKEND_AUTH"> {
  const words = serverWords === "" || serverWords === "an empty body" ? "" : `: ${serverWords}`;
  const message = hadCredentials
    ? `${who} refused the credentials given for ${route} (HTTP ${status}${words}); ` +
      `expected a user:password (or Authorization header value) the server accepts, through the URL or ${AUTH_HINT}`
    : `${who} asks for credentials for ${route} (HTTP ${status}${words}) and none were given; pass user:password through ${AUTH_HINT}`;
  return new PickrankError("BACKEND_AUTH", message, { details: { backend: who, status, route } });
}

/** The reason a request stopped: a PickrankError reason (CLOSED, a stall …) as it is, else the contract's ABORTED. */
export function abortedRequest(who: string, method: string, path: string, reason: unknown): PickrankError {
  if (isPickrankError(reason)) return reason;
  return abortedError(`${method} ${path} on ${who}`, reason, { backend: who });
}

export function protocolError(who: string, route: string, got: string, expected: string, cause?: unknown): PickrankError {
  return new PickrankError("BACKEND_PROTOCOL", `${who} answered ${route} with ${got}; expected ${expected}`, {
    cause,
    details: { backend: who, route },
  });
}

/** The first characters of a body, for messages. */
export function preview(text: string, max = 80): string {
  const t = text.replace(/\s+/g, " ").trim();
  if (t === "") return "an empty body";
  return JSON.stringify(t.length > max ? `${t.slice(0, max - 3)}...` : t);
}

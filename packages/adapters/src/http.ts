import { PickrankError, invalidParameter, isPickrankError } from "@pickrank/contract";
import { sleep } from "./util.ts";

/** Where a server lives, with the credentials split off so they never reach ids, logs or errors. */
export interface Endpoint {
  /** Base URL without credentials, query or trailing slash ("http://host:8188" or "http://host/api"). */
  base: string;
  /** Authorization header value, when the URL or the auth option carried credentials. */
  authorization?: string;
}

/** Hides "user:pass@" in anything we might print. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, "$1***@");
}

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
    const user = decodeURIComponent(u.username);
    const pass = decodeURIComponent(u.password);
    authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
    u.username = "";
    u.password = "";
  }
  if (auth !== undefined) {
    if (typeof auth !== "string" || auth === "") throw new PickrankError("BAD_INPUT", `Expected "user:password" or a full Authorization header value for auth but received ${auth === "" ? "an empty string" : typeof auth}`, { details: { parameter: "auth" } });
    // A value with a scheme ("Bearer x", "Basic x") is sent as is; "user:password" becomes HTTP Basic.
    authorization = /^[A-Za-z][\w-]*\s+\S/.test(auth) && !/^[^:\s]+:/.test(auth) ? auth : `Basic ${Buffer.from(auth).toString("base64")}`;
  }
  u.search = "";
  u.hash = "";
  const base = u.toString().replace(/\/+$/, "");
  return authorization === undefined ? { base } : { base, authorization };
}

export interface HttpOptions {
  /** Per-request time limit (ms). */
  timeoutMs: number;
  /** Extra attempts for idempotent requests (GET) that failed to connect, timed out or got a 5xx. */
  retries: number;
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

/**
 * A thin fetch wrapper: one place that turns connection failures, time limits, cancellation, HTTP
 * errors and unreadable bodies into PickrankErrors naming the backend, the route and the server's words.
 */
export class HttpClient {
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

  async request<T = unknown>(method: "GET" | "POST", path: string, o: RequestOptions = {}): Promise<T> {
    const retries = o.retries ?? (method === "GET" ? this.opts.retries : 0);
    let attempt = 0;
    for (;;) {
      try {
        return (await this.once(method, path, o)) as T;
      } catch (e) {
        const retriable =
          isPickrankError(e) &&
          (e.code === "BACKEND_UNREACHABLE" || e.code === "TIMEOUT" || (e.code === "BACKEND_REJECTED" && Number(e.details?.status) >= 500));
        if (!retriable || attempt >= retries || o.signal?.aborted) throw e;
        attempt++;
        await sleep(this.opts.retryDelayMs * attempt, o.signal).catch(() => undefined);
        if (o.signal?.aborted) throw abortedRequest(this.who, method, path, o.signal.reason);
      }
    }
  }

  private async once(method: "GET" | "POST", path: string, o: RequestOptions): Promise<unknown> {
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = o.signal ? AbortSignal.any([o.signal, timeout]) : timeout;
    const route = `${method} ${path}`;
    const fail = (e: unknown): PickrankError => {
      if (o.signal?.aborted) return abortedRequest(this.who, method, path, o.signal.reason);
      if (timeout.aborted) {
        return new PickrankError("TIMEOUT", `${this.who} did not answer ${route} within ${timeoutMs} ms (raise the backend's timeoutMs if the server is just slow)`, {
          cause: e,
          details: { backend: this.who, route, timeoutMs },
        });
      }
      const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
      const why = cause instanceof Error ? cause.message : String(cause);
      return new PickrankError("BACKEND_UNREACHABLE", `${this.who} could not be reached for ${route}: ${why} (is the server running and the URL right?)`, {
        cause: e,
        details: { backend: this.who, route },
      });
    };
    let res: Response;
    try {
      const init: RequestInit = { method, headers: this.headers(o.json === undefined ? undefined : { "content-type": "application/json" }), signal };
      if (o.json !== undefined) init.body = JSON.stringify(o.json);
      res = await fetch(this.url(path, o.query), init);
    } catch (e) {
      throw fail(e);
    }
    let body: Buffer;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch (e) {
      throw fail(e);
    }
    if (!res.ok) {
      const text = body.toString("utf8");
      const d = this.describe(res.status, text);
      const hint = res.status === 401 || res.status === 403 ? " (check the credentials: user:password in the URL or the auth option)" : "";
      throw new PickrankError("BACKEND_REJECTED", `${this.who} rejected ${route} with HTTP ${res.status}: ${d.message}${hint}`, {
        details: { backend: this.who, route, status: res.status, ...d.details },
      });
    }
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

export function abortedRequest(who: string, method: string, path: string, reason: unknown): PickrankError {
  return new PickrankError("ABORTED", `${method} ${path} on ${who} was cancelled`, { cause: reason, details: { backend: who } });
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

/**
 * HTTP to the Hugging Face hub with Node's global fetch: timeouts on the wait for headers and on idle
 * bodies, retries with backoff for 5xx/429 and network errors, redirects followed by hand so the token
 * only ever goes to the endpoint's own origin (a 302 to the LFS CDN drops Authorization, as
 * huggingface_hub's requests session does), and hub errors turned into DOWNLOAD_FAILED messages that
 * say what to do.
 */
import { PickrankError, retry, SilenceTimer } from "@pickrank/contract";
import { abortedError as contractAbortedError } from "@pickrank/contract";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export interface HubClientOptions {
  endpoint?: string;
  token?: string;
  /** Where the token came from, for messages (default "HF_TOKEN"). */
  tokenSource?: string;
  signal?: AbortSignal;
  /** Retries after the first try for 5xx, 429 and network errors. Default 4. */
  retries?: number;
  /** First backoff delay; doubles each retry (capped at 10 s). Default 500 ms. */
  retryDelayMs?: number;
  /** Longest wait for response headers. Default 30 s. */
  connectTimeoutMs?: number;
  /** Longest gap between two body chunks. Default 60 s. */
  idleTimeoutMs?: number;
}

/** What a transient hub failure carries for the retry policy. */
export interface TransientDetails extends Record<string, unknown> {
  transient: true;
  /** The server's Retry-After, in ms. */
  retryAfterMs?: number;
  /** Worth one more try only (refused connection, unknown host): rarely transient, and a user waiting on a typo deserves a quick answer. */
  once?: boolean;
}

/** A hub failure worth another try (5xx, 429, network errors, timeouts): DOWNLOAD_FAILED marked transient. */
export type TransientError = PickrankError<"DOWNLOAD_FAILED"> & { details: TransientDetails };

/**
 * The error for a failure worth another try; HubClient.withRetries retries it and, once the retries are
 * spent, replaces it with a DOWNLOAD_FAILED that names the endpoint and what to change.
 */
export function transientError(
  message: string,
  opts: { retryAfterMs?: number | undefined; once?: boolean; cause?: unknown } = {},
): TransientError {
  const details: TransientDetails = { transient: true };
  if (opts.retryAfterMs !== undefined) details.retryAfterMs = opts.retryAfterMs;
  if (opts.once) details.once = true;
  const cause = opts.cause !== undefined ? { cause: opts.cause } : {};
  return new PickrankError("DOWNLOAD_FAILED", message, { details, ...cause }) as TransientError;
}

/** True for errors made by transientError. */
export function isTransient(e: unknown): e is TransientError {
  return e instanceof PickrankError && e.code === "DOWNLOAD_FAILED" && e.details?.transient === true;
}

/** The errno-style code of a network failure, from undici's nested causes. */
function networkCode(e: unknown): string | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z_]+$/.test(code)) return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What went wrong below HTTP (refused, DNS, reset, TLS), read from undici's nested causes. */
export function networkReason(e: unknown): string {
  let cur: unknown = e;
  const parts: string[] = [];
  for (let i = 0; i < 4 && cur instanceof Error; i++) {
    const code = (cur as { code?: unknown }).code;
    if (cur.message && cur.message !== "fetch failed" && !parts.includes(cur.message)) parts.push(cur.message);
    else if (typeof code === "string" && !parts.includes(code)) parts.push(code);
    cur = (cur as { cause?: unknown }).cause;
  }
  return parts.join(": ") || String(e);
}

/**
 * Parses and checks an endpoint (HF_ENDPOINT or the `endpoint` option).
 * @throws BAD_INPUT when it is not an http(s) URL: a malformed setting, not a failed download.
 */
export function parseEndpoint(raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch (e) {
    throw new PickrankError(
      "BAD_INPUT",
      `HF_ENDPOINT ${JSON.stringify(raw)} is not a URL; expected an http(s) URL such as ${DEFAULT_ENDPOINT} (or unset HF_ENDPOINT to use it)`,
      { cause: e, details: { parameter: "HF_ENDPOINT", expected: "an http(s) URL", endpoint: raw } },
    );
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new PickrankError(
      "BAD_INPUT",
      `HF_ENDPOINT ${JSON.stringify(raw)} uses ${u.protocol.replace(/:$/, "")}; expected an http(s) URL such as ${DEFAULT_ENDPOINT}`,
      { details: { parameter: "HF_ENDPOINT", expected: "an http(s) URL", endpoint: raw } },
    );
  }
  // Mirrors may live under a path prefix (https://host/hf); keep it, without the trailing slash.
  u.pathname = u.pathname.replace(/\/+$/, "");
  u.search = "";
  u.hash = "";
  return u;
}

export interface HubResponse {
  res: Response;
  /** URL of the last hop (after redirects followed). */
  url: string;
  /** Aborts this request (used by body readers for the idle timeout). */
  abort: (reason: unknown) => void;
}

/** "30 s", or "200 ms" below a second (tests use short timeouts). */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

/** The ABORTED error of a cancelled download (the signal's own PickrankError when it carries one). */
export function abortedError(signal: AbortSignal): PickrankError {
  return signal.reason instanceof PickrankError ? signal.reason : contractAbortedError("model download", signal.reason);
}

export class HubClient {
  readonly endpoint: URL;
  /** Endpoint as given, for messages. */
  readonly endpointText: string;
  readonly token: string | undefined;
  readonly tokenSource: string;
  readonly signal: AbortSignal | undefined;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;

  constructor(opts: HubClientOptions = {}) {
    this.endpoint = parseEndpoint(opts.endpoint ?? DEFAULT_ENDPOINT);
    this.endpointText = this.endpoint.href.replace(/\/$/, "");
    this.token = opts.token || undefined;
    this.tokenSource = opts.tokenSource ?? "HF_TOKEN";
    this.signal = opts.signal;
    this.retries = opts.retries ?? 4;
    this.retryDelayMs = opts.retryDelayMs ?? 500;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 60_000;
  }

  /** `{endpoint}/{path}` with the endpoint's path prefix kept. */
  url(pathAndQuery: string): string {
    return `${this.endpointText}/${pathAndQuery.replace(/^\/+/, "")}`;
  }

  /** True when a URL is on the endpoint's origin, the only place the token may go. */
  isEndpointOrigin(url: string): boolean {
    return new URL(url).origin === this.endpoint.origin;
  }

  checkAborted(): void {
    if (this.signal?.aborted) throw abortedError(this.signal);
  }

  /**
   * One request, redirects followed by hand: `follow: "relative"` follows only Location headers that
   * are relative (a renamed repo on the same site), stopping at absolute ones (the LFS CDN) the way
   * huggingface_hub's HEAD does; `"all"` follows every redirect. Network errors and timeouts throw
   * transient errors (transientError); HTTP errors come back as the response.
   */
  async request(
    method: "GET" | "HEAD",
    url: string,
    opts: { headers?: Record<string, string>; follow: "none" | "relative" | "all" },
  ): Promise<HubResponse> {
    let current = url;
    for (let hop = 0; ; hop++) {
      this.checkAborted();
      const ctl = new AbortController();
      const signal = this.signal ? AbortSignal.any([this.signal, ctl.signal]) : ctl.signal;
      const headers: Record<string, string> = {
        "User-Agent": "pickrank/0.1 (+node fetch)",
        // Sizes and ranges are about the stored bytes; no transparent gzip.
        "Accept-Encoding": "identity",
        ...opts.headers,
      };
      if (this.token && this.isEndpointOrigin(current)) headers.Authorization = `Bearer ${this.token}`;
      let timedOut = false;
      // Time this process was held up (a blocked event loop, a starved CPU) is not the server's silence.
      const timer = new SilenceTimer(this.connectTimeoutMs, () => {
        timedOut = true;
        ctl.abort(transientError(`no answer within ${formatDuration(this.connectTimeoutMs)}`));
      });
      timer.restart();
      let res: Response;
      try {
        res = await fetch(current, { method, headers, redirect: "manual", signal });
      } catch (e) {
        timer.clear();
        if (this.signal?.aborted) throw abortedError(this.signal);
        const host = new URL(current).host;
        const reason = timedOut ? `no answer within ${formatDuration(this.connectTimeoutMs)}` : networkReason(e);
        const code = networkCode(e);
        if (/bad port/i.test(reason)) {
          // fetch refuses reserved ports (9, 25, 6000 …) before connecting: retrying cannot help.
          throw new PickrankError(
            "DOWNLOAD_FAILED",
            `Could not reach ${host}: fetch refuses port ${new URL(current).port} (a reserved port); expected a hub or mirror on an ordinary port (hub endpoint ${this.endpointText})`,
            { cause: e, details: { endpoint: this.endpointText } },
          );
        }
        throw transientError(`could not reach ${host} (${reason})`, {
          cause: e,
          once: !timedOut && (code === "ECONNREFUSED" || code === "ENOTFOUND"),
        });
      }
      timer.clear();
      const location = res.headers.get("location");
      const isRedirect = res.status >= 300 && res.status < 400 && location !== null;
      const relative = isRedirect && !/^[a-z][a-z0-9+.-]*:\/\//i.test(location!) && !location!.startsWith("//");
      if (isRedirect && (opts.follow === "all" || (opts.follow === "relative" && relative))) {
        if (hop >= 10)
          throw new PickrankError("DOWNLOAD_FAILED", `Too many redirects from ${url}; expected at most 10`, { details: { url } });
        await res.body?.cancel().catch(() => undefined);
        current = new URL(location!, current).href;
        continue;
      }
      return { res, url: current, abort: (reason) => ctl.abort(reason) };
    }
  }

  /**
   * Runs `fn` through the contract's retry(): transient failures (transientError) are retried with
   * exponential backoff from `retryDelayMs` (doubling, capped at 10 s), a server's Retry-After wins
   * when longer (capped at 30 s), and a refused connection or unknown host gets one more try only.
   * @throws DOWNLOAD_FAILED naming the endpoint when the retries are spent; ABORTED; whatever else
   * `fn` throws, as it is.
   */
  async withRetries<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let attempts = 0;
    try {
      return await retry(
        async () => {
          attempts++;
          return fn();
        },
        {
          retries: this.retries,
          minDelayMs: this.retryDelayMs,
          maxDelayMs: 10_000,
          factor: 2,
          ...(this.signal ? { signal: this.signal } : {}),
          shouldRetry: (e, attempt) => isTransient(e) && !(e.details.once && attempt >= 2),
          retryAfterMs: (e) => (isTransient(e) ? e.details.retryAfterMs : undefined),
        },
      );
    } catch (e) {
      if (this.signal?.aborted) throw abortedError(this.signal);
      if (isTransient(e)) throw this.unreachable(what, e, attempts);
      throw e;
    }
  }

  /** The error for a hub that kept failing: names the host and says what to change. */
  unreachable(what: string, err: TransientError, attempts: number): PickrankError {
    return new PickrankError(
      "DOWNLOAD_FAILED",
      `Could not ${what}: ${err.message} after ${attempts} attempt${attempts === 1 ? "" : "s"} (hub endpoint ${this.endpointText}). ` +
        `Check the network connection, set HF_ENDPOINT to a reachable hub or mirror, or set HF_HUB_OFFLINE=1 to use only models already in the cache.`,
      { cause: err.cause ?? err, details: { endpoint: this.endpointText } },
    );
  }

  /**
   * Turns a non-2xx answer into an error: a transient one for 5xx/429 (the caller's retry loop gets
   * another go), else DOWNLOAD_FAILED that names the repo, revision or file and what to do.
   */
  async statusError(res: Response, ctx: { repo: string; revision?: string; file?: string; url: string }): Promise<PickrankError> {
    const status = res.status;
    const errorCode = res.headers.get("x-error-code") ?? undefined;
    let serverMsg = res.headers.get("x-error-message") ?? undefined;
    if (!serverMsg) {
      const text = await res.text().catch(() => "");
      try {
        const j = JSON.parse(text) as { error?: unknown };
        if (typeof j.error === "string") serverMsg = j.error;
      } catch {
        if (text && text.length < 300) serverMsg = text.trim();
      }
    } else {
      await res.body?.cancel().catch(() => undefined);
    }
    if (status >= 500 || status === 429) {
      const ra = Number(res.headers.get("retry-after"));
      return transientError(`${new URL(ctx.url).host} answered ${status}${serverMsg ? ` (${serverMsg})` : ""}`, {
        retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined,
      });
    }
    const details = {
      status,
      url: ctx.url,
      repo: ctx.repo,
      revision: ctx.revision,
      file: ctx.file,
      errorCode,
      endpoint: this.endpointText,
    };
    const where = `${ctx.repo}${ctx.revision ? `@${ctx.revision}` : ""}`;
    const tokenHint = this.token
      ? `A token was sent (from ${this.tokenSource}), but the hub refused it: check that it is valid and that its account has access (for a gated model, accept its terms on the model page).`
      : "Set HF_TOKEN to a Hugging Face access token (https://huggingface.co/settings/tokens) from an account with access, or run `huggingface-cli login` once.";
    let msg: string;
    if (errorCode === "RevisionNotFound") {
      msg = `Revision ${JSON.stringify(ctx.revision)} not found in ${ctx.repo} at ${this.endpointText} (${status}); expected a branch, tag or commit sha of that repository`;
    } else if (errorCode === "EntryNotFound" || (status === 404 && ctx.file)) {
      msg = `File ${JSON.stringify(ctx.file)} not found in ${where} at ${this.endpointText} (${status}); expected the repository to hold it`;
    } else if (status === 401 || status === 403 || errorCode === "GatedRepo") {
      const gated = errorCode === "GatedRepo" || status === 403;
      msg =
        `The hub at ${this.endpointText} refused access to ${where} (${status}${serverMsg ? `: ${serverMsg}` : ""}): ` +
        (gated ? "the repository is gated or private. " : "the repository is private, gated, or does not exist. ") +
        tokenHint;
    } else if (status === 404 || errorCode === "RepoNotFound") {
      msg = `Repository ${JSON.stringify(ctx.repo)} not found at ${this.endpointText} (${status}); expected an existing model repo id like "yuvalkirstain/PickScore_v1" (if it is private, set HF_TOKEN)`;
    } else {
      msg = `The hub at ${this.endpointText} answered ${status}${serverMsg ? ` (${serverMsg})` : ""} for ${ctx.url}; expected 200`;
    }
    return new PickrankError("DOWNLOAD_FAILED", msg, { details });
  }
}

import { z } from "zod";
import { PickrankError, invalidParameter, toPickrankError } from "@pickrank/contract";
import type { Backend, BackendEvent, Candidate, GenerateRequest, Generated, GenerationParams, HealthReport } from "@pickrank/contract";
import { HttpClient, parseEndpoint, preview, protocolError, type HttpOptions } from "../http.ts";
import { Channel, MAX_SEED_32, beginRun, closeRuns, drainRun, isPositiveInt, runController, sniffFormat, stopError } from "../util.ts";
import { infotextOf, parseInfo, settingsFromInfo, txt2imgResponse, type A1111Info } from "./info.ts";

/** A1111Backend's options; every time is in milliseconds. */
export interface A1111Options extends Partial<HttpOptions> {
  /** "user:password" as given to --api-auth, or a full Authorization header value. */
  auth?: string;
  /** Time limit of one txt2img request, which holds the whole render (default 600000). */
  generationTimeoutMs?: number;
  /** How often /sdapi/v1/progress is read during a render (default 1000; 0 turns it off). */
  progressIntervalMs?: number;
  /** Images per txt2img request when params.batchSize is not given (default 1: each candidate arrives as soon as it is done). */
  batchSize?: number;
}

const progressSchema = z
  .object({
    progress: z.number().optional(),
    state: z.object({ sampling_step: z.number().optional(), sampling_steps: z.number().optional() }).loose().optional(),
  })
  .loose();

/** Body fields pickrank sets itself: params.extra may not override them (the candidates' seeds would lie). */
const RESERVED = ["prompt", "negative_prompt", "seed", "subseed_strength", "batch_size", "n_iter", "send_images", "save_images"];

/** Reads A1111's error JSON ({error, detail, body, errors}; FastAPI's 422 {detail:[{loc,msg}]}) into one line. */
export function describeA1111Error(status: number, body: string): { message: string; details?: Record<string, unknown> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { message: preview(body, 200) };
  }
  const o = (parsed ?? {}) as { error?: unknown; detail?: unknown; errors?: unknown; body?: unknown };
  if (Array.isArray(o.detail)) {
    const items = o.detail.map((d) => {
      const x = (d ?? {}) as { loc?: unknown; msg?: unknown };
      return `${Array.isArray(x.loc) ? x.loc.join(".") : "?"}: ${String(x.msg ?? "invalid")}`;
    });
    return { message: `invalid request: ${items.join("; ")}`, details: { status, validation: o.detail } };
  }
  const parts = [o.error, o.detail, o.errors].filter((s): s is string => typeof s === "string" && s !== "");
  // errors repeats detail as "404: Sampler not found"; keep one of them.
  const unique = parts.filter((p, i) => !parts.slice(0, i).some((q) => p.includes(q) || q.includes(p)));
  return { message: unique.length > 0 ? unique.join(": ") : preview(body, 200), details: { status, serverError: o.error ?? null } };
}

/** The txt2img body for a run of consecutive seeds starting at `seed`; params.extra is merged in last. */
export function txt2imgBody(req: GenerateRequest, seed: number, count: number): Record<string, unknown> {
  const p: GenerationParams = req.params ?? {};
  const b: Record<string, unknown> = {
    prompt: req.prompt,
    negative_prompt: req.negativePrompt ?? "",
    seed,
    subseed_strength: 0,
    batch_size: count,
    n_iter: 1,
    send_images: true,
    save_images: false,
  };
  if (p.steps !== undefined) b.steps = p.steps;
  if (p.cfgScale !== undefined) b.cfg_scale = p.cfgScale;
  if (p.width !== undefined) b.width = p.width;
  if (p.height !== undefined) b.height = p.height;
  if (p.sampler !== undefined) b.sampler_name = p.sampler;
  if (p.scheduler !== undefined) b.scheduler = p.scheduler;
  if (p.checkpoint !== undefined) {
    b.override_settings = { sd_model_checkpoint: p.checkpoint };
    b.override_settings_restore_afterwards = true;
  }
  return { ...b, ...p.extra };
}

/** Groups candidate positions into runs of consecutive seeds of at most `size` (A1111 gives image k of a batch seed + k). */
export function seedRuns(seeds: number[], size: number): number[][] {
  const chunks: number[][] = [];
  seeds.forEach((seed, i) => {
    const last = chunks[chunks.length - 1];
    const prev = last?.[last.length - 1];
    if (last && prev !== undefined && last.length < size && seed === seeds[prev]! + 1) last.push(i);
    else chunks.push([i]);
  });
  return chunks;
}

interface RunState {
  req: GenerateRequest;
  seeds: number[];
  keys: string[];
  emit: (e: BackendEvent) => void;
  signal: AbortSignal;
  out: Channel<Generated>;
  resolved: number;
}

/**
 * Automatic1111 / Forge / SD.Next over HTTP (kind "a1111"): txt2img per run of consecutive seeds
 * (params.batchSize or options.batchSize images per request, default 1), progress from
 * /sdapi/v1/progress, cancel via /sdapi/v1/interrupt. The server renders one request at a time, so
 * this backend sends one at a time too, across all its runs (`maxConcurrency` 1), which keeps
 * progress events on the right candidate. Image k of a batch gets seed + k from the server and
 * reports it (info.all_seeds[k]); that seed alone reproduces it. Candidates carry `meta.infotext`
 * and `meta.settings` from the answer's info. Seeds: 0 … 2^32 − 1.
 */
export class A1111Backend implements Backend {
  readonly kind = "a1111";
  readonly maxSeed = MAX_SEED_32;
  /** The server serializes generation: a pool gives this backend one request at a time. */
  readonly maxConcurrency = 1;
  readonly id: string;
  readonly http: HttpClient;
  /** Set by close(). */
  closed = false;
  private readonly generationTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly batchSize: number;
  private readonly live = new Set<AbortController>();
  /** The tail of this backend's txt2img requests: the next waits for it. */
  private serial: Promise<void> = Promise.resolve();

  constructor(url: string, opts: A1111Options = {}) {
    const ep = parseEndpoint(url, opts.auth, "Automatic1111");
    this.id = `a1111@${ep.base}`;
    this.http = new HttpClient(
      ep,
      this.id,
      { timeoutMs: opts.timeoutMs ?? 30_000, retries: opts.retries ?? 2, retryDelayMs: opts.retryDelayMs ?? 250 },
      describeA1111Error,
    );
    this.generationTimeoutMs = opts.generationTimeoutMs ?? 600_000;
    this.progressIntervalMs = opts.progressIntervalMs ?? 1000;
    this.batchSize = opts.batchSize ?? 1;
    if (!isPositiveInt(this.batchSize)) throw invalidParameter("batchSize", "positive integer", this.batchSize);
  }

  /** Checkpoint titles the server offers (GET /sdapi/v1/sd-models). Throws like every request (BACKEND_*). */
  async listCheckpoints(signal?: AbortSignal): Promise<string[]> {
    const body = await this.http.request("GET", "/sdapi/v1/sd-models", { signal });
    if (!Array.isArray(body))
      throw protocolError(this.id, "GET /sdapi/v1/sd-models", preview(JSON.stringify(body) ?? ""), "an array of { title, model_name }");
    return body.map((m) => String((m as { title?: unknown }).title ?? (m as { model_name?: unknown }).model_name ?? ""));
  }

  /** GET /sdapi/v1/options: up when it answers with an object; the loaded checkpoint when it names one. Never throws. */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    try {
      const options = await this.http.request("GET", "/sdapi/v1/options", { signal });
      if (options === null || typeof options !== "object")
        throw protocolError(this.id, "GET /sdapi/v1/options", preview(JSON.stringify(options) ?? ""), "an object of settings");
      const o = options as Record<string, unknown>;
      const report: HealthReport = { ok: true, backend: this.id, kind: this.kind };
      if (typeof o.sd_model_checkpoint === "string") report.checkpoint = o.sd_model_checkpoint;
      return report;
    } catch (e) {
      return { ok: false, backend: this.id, kind: this.kind, error: toPickrankError(e, "BACKEND_UNREACHABLE").toJSON() };
    }
  }

  /** What decides the pixels beyond the request: images per txt2img call by default. */
  fingerprint(): Record<string, unknown> {
    return { kind: this.kind, batchSize: this.batchSize };
  }

  /** Stops every run (they throw CLOSED; a render in progress is interrupted); later generate() calls throw CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    closeRuns(this.id, this.live);
  }

  /**
   * Yields each candidate as its request returns. Throws BAD_INPUT (request, seeds above 2^32 − 1,
   * params.extra naming a field pickrank sets), CLOSED, ABORTED, and the first request's failure
   * (BACKEND_UNREACHABLE, BACKEND_AUTH, BACKEND_REJECTED, TIMEOUT …) when nothing was made yet.
   */
  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this, req);
    const clash = Object.keys(req.params?.extra ?? {}).find((k) => RESERVED.includes(k));
    if (clash !== undefined) {
      throw invalidParameter(
        `extra.${clash}`,
        "no field pickrank sets itself (use prompt, negativePrompt, seed/seeds, n and params.batchSize)",
        req.params!.extra![clash],
      );
    }
    const chunks = seedRuns(seeds, req.params?.batchSize ?? this.batchSize);
    const ctl = runController(req.signal, this.live);
    const { ac } = ctl;
    const st: RunState = { req, seeds, keys, emit, signal: ac.signal, out: new Channel<Generated>(), resolved: 0 };
    ac.signal.addEventListener("abort", () => st.out.close(stopError(this.id, ac.signal.reason)), { once: true });
    for (const chunk of chunks) for (const i of chunk) emit({ type: "queued", backend: this.id, key: keys[i]!, seed: seeds[i]! });
    const producer = this.produce(st, chunks);
    // A render in flight is interrupted on the server before we return.
    yield* drainRun(
      this.id,
      ctl,
      () => st.out,
      () => producer,
    );
  }

  /** Renders the chunks one after another (behind this backend's other runs) while the caller consumes. */
  private async produce(st: RunState, chunks: number[][]): Promise<void> {
    for (let c = 0; c < chunks.length; c++) {
      const chunk = chunks[c]!;
      try {
        const done = await this.exclusive(() => this.renderChunk(st, chunk), st.signal);
        this.deliver(st, chunk, done);
      } catch (e) {
        if (st.signal.aborted) return;
        const err = toPickrankError(e);
        // Nothing made yet: the caller gets the error itself (unreachable, refused credentials, rejected parameters).
        if (st.resolved === 0) return st.out.close(err);
        this.fail(st, chunk, err);
        if (err.code === "BACKEND_UNREACHABLE" || err.code === "TIMEOUT" || err.code === "BACKEND_AUTH") {
          for (const rest of chunks.slice(c + 1)) this.fail(st, rest, err);
          return;
        }
      }
    }
  }

  /** Runs `fn` when this backend's previous request is done (the server renders one at a time anyway). */
  private async exclusive<T>(fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const prev = this.serial;
    let release!: () => void;
    this.serial = new Promise((r) => (release = r));
    try {
      await Promise.race([prev, new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }))]);
      return await fn();
    } finally {
      // Keep the order even when we leave early: the next waits for our predecessor too.
      void prev.then(release);
    }
  }

  /** One txt2img request with progress polling; interrupts the server's render when cancelled mid-way. */
  private async renderChunk(
    st: RunState,
    chunk: number[],
  ): Promise<{ images: string[]; info: A1111Info; postAt: number; startedAt: number | undefined }> {
    const postAt = Date.now();
    const progress = { startedAt: undefined as number | undefined };
    const stopPolling = this.pollProgress(st, chunk, progress);
    let raw: unknown;
    try {
      raw = await this.http.request("POST", "/sdapi/v1/txt2img", {
        json: txt2imgBody(st.req, st.seeds[chunk[0]!]!, chunk.length),
        timeoutMs: this.generationTimeoutMs,
        retries: 0,
        signal: st.signal,
      });
    } catch (e) {
      if (st.signal.aborted)
        await this.http.request("POST", "/sdapi/v1/interrupt", { expect: "none", timeoutMs: 5000, retries: 0 }).catch(() => undefined);
      throw e;
    } finally {
      stopPolling();
    }
    const route = "POST /sdapi/v1/txt2img";
    const r = txt2imgResponse.safeParse(raw);
    if (!r.success)
      throw protocolError(this.id, route, preview(JSON.stringify(raw) ?? ""), "{ images: base64[], parameters, info: JSON string }");
    return { images: r.data.images, info: parseInfo(this.id, route, r.data.info), postAt, startedAt: progress.startedAt };
  }

  private pollProgress(st: RunState, chunk: number[], progress: { startedAt: number | undefined }): () => void {
    if (this.progressIntervalMs <= 0) return () => undefined;
    let busy = false;
    let on = true;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.http
        .request("GET", "/sdapi/v1/progress", { query: { skip_current_image: "true" }, retries: 0, signal: st.signal })
        .then((raw) => {
          const s = progressSchema.safeParse(raw);
          const state = s.success ? s.data.state : undefined;
          if (!on || !state?.sampling_steps || state.sampling_step === undefined || state.sampling_step <= 0) return;
          progress.startedAt ??= Date.now();
          const e: BackendEvent = { type: "progress", backend: this.id, step: state.sampling_step, steps: state.sampling_steps };
          if (chunk.length === 1) e.key = st.keys[chunk[0]!]!;
          st.emit(e);
        })
        .catch(() => undefined) // progress is a nicety; the render request reports real failures
        .finally(() => (busy = false));
    }, this.progressIntervalMs);
    timer.unref();
    return () => {
      on = false;
      clearInterval(timer);
    };
  }

  private deliver(
    st: RunState,
    chunk: number[],
    r: { images: string[]; info: A1111Info; postAt: number; startedAt: number | undefined },
  ): void {
    const doneAt = Date.now();
    const first = r.info.index_of_first_image ?? 0;
    // A grid image comes first when the server is set to return grids; skip it.
    const images = r.images.slice(first);
    chunk.forEach((index, k) => {
      const requested = st.seeds[index]!;
      const b64 = images[k];
      if (b64 === undefined) {
        return this.fail(
          st,
          [index],
          new PickrankError(
            "BACKEND_PROTOCOL",
            `${this.id} returned ${images.length} image(s) for a batch of ${chunk.length} (interrupted on the server?)`,
            { details: { backend: this.id, seed: requested } },
          ),
        );
      }
      const image = Buffer.from(b64.replace(/^data:image\/\w+;base64,/, ""), "base64");
      const format = sniffFormat(image);
      if (format === undefined) {
        return this.fail(
          st,
          [index],
          new PickrankError(
            "BACKEND_PROTOCOL",
            `${this.id} returned images[${k + first}] that is not a base64 PNG, JPEG or WebP (${preview(b64, 24)})`,
            { details: { backend: this.id, seed: requested } },
          ),
        );
      }
      const seed = r.info.all_seeds?.[k] ?? requested;
      const start = r.startedAt ?? r.postAt;
      const c: Candidate = {
        ok: true,
        key: st.keys[index]!,
        seed,
        image,
        format,
        backend: this.id,
        timings: { queuedMs: start - r.postAt, renderMs: doneAt - start, totalMs: Date.now() - r.postAt },
        meta: { settings: settingsFromInfo(r.info, k) },
      };
      const infotext = infotextOf(r.info, k);
      if (infotext !== undefined) c.meta!.infotext = infotext;
      if (chunk.length > 1) c.batchIndex = k;
      if (seed !== requested) c.meta!.requestedSeed = requested;
      st.emit({ type: "candidate", backend: this.id, key: c.key, seed });
      this.settle(st, c);
    });
  }

  private settle(st: RunState, g: Generated): void {
    st.resolved++;
    st.out.push(g);
    if (st.resolved >= st.req.n) st.out.close();
  }

  private fail(st: RunState, indices: number[], error: PickrankError): void {
    for (const index of indices) {
      st.emit({ type: "candidate-failed", backend: this.id, key: st.keys[index]!, seed: st.seeds[index]!, error });
      this.settle(st, { ok: false, key: st.keys[index]!, seed: st.seeds[index]!, backend: this.id, error });
    }
  }
}

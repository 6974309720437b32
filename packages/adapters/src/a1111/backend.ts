import { z } from "zod";
import { PickrankError, isPickrankError, toPickrankError } from "@pickrank/contract";
import { HttpClient, parseEndpoint, preview, protocolError, type HttpOptions } from "../http.ts";
import type { Backend, BackendEvent, Candidate, GenerateRequest, Generated, HealthReport } from "@pickrank/contract";
import { Channel, abortError, beginRun, sniffFormat } from "../util.ts";

export interface A1111Options extends Partial<HttpOptions> {
  /** "user:password" as given to --api-auth, or a full Authorization header value. */
  auth?: string;
  /** Time limit of one txt2img request, which holds the whole render (ms; default 600000). */
  generationTimeoutMs?: number;
  /** How often /sdapi/v1/progress is read during a render (ms; default 1000; 0 turns it off). */
  progressIntervalMs?: number;
  /** Images per txt2img request when params.batchSize is not given (default 1: each candidate arrives as soon as it is done). */
  batchSize?: number;
}

const txt2imgResponse = z.object({ images: z.array(z.string()), info: z.string(), parameters: z.unknown().optional() }).loose();
const infoSchema = z.object({
  all_seeds: z.array(z.number()).optional(),
  seed: z.number().optional(),
  index_of_first_image: z.number().int().nonnegative().optional(),
}).loose();
const progressSchema = z.object({
  progress: z.number().optional(),
  state: z.object({ sampling_step: z.number().optional(), sampling_steps: z.number().optional(), job_count: z.number().optional(), job_no: z.number().optional() }).loose().optional(),
}).loose();

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

/** Automatic1111 / Forge / SD.Next over HTTP: txt2img per group of consecutive seeds, progress from /sdapi/v1/progress. */
export class A1111Backend implements Backend {
  readonly kind = "a1111";
  /** A1111 draws its own random seeds below 2^32 and its variation seeds assume 32-bit values. */
  readonly maxSeed = 0xffff_ffff;
  readonly id: string;
  readonly http: HttpClient;
  private readonly generationTimeoutMs: number;
  private readonly progressIntervalMs: number;
  private readonly batchSize: number;
  private readonly live = new Set<AbortController>();

  constructor(url: string, opts: A1111Options = {}) {
    const ep = parseEndpoint(url, opts.auth, "Automatic1111");
    this.id = `a1111@${ep.base}`;
    this.http = new HttpClient(ep, this.id, { timeoutMs: opts.timeoutMs ?? 30_000, retries: opts.retries ?? 2, retryDelayMs: opts.retryDelayMs ?? 250 }, describeA1111Error);
    this.generationTimeoutMs = opts.generationTimeoutMs ?? 600_000;
    this.progressIntervalMs = opts.progressIntervalMs ?? 1000;
    this.batchSize = opts.batchSize ?? 1;
  }

  /** Checkpoint titles the server offers (GET /sdapi/v1/sd-models). */
  async listCheckpoints(signal?: AbortSignal): Promise<string[]> {
    const body = await this.http.request("GET", "/sdapi/v1/sd-models", { signal });
    if (!Array.isArray(body)) throw protocolError(this.id, "GET /sdapi/v1/sd-models", preview(JSON.stringify(body) ?? ""), "an array of { title, model_name }");
    return body.map((m) => String((m as { title?: unknown }).title ?? (m as { model_name?: unknown }).model_name ?? ""));
  }

  /** GET /sdapi/v1/options: up when it answers with an object; the loaded checkpoint when it names one. */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    try {
      const options = await this.http.request("GET", "/sdapi/v1/options", { signal });
      if (options === null || typeof options !== "object") throw protocolError(this.id, "GET /sdapi/v1/options", preview(JSON.stringify(options) ?? ""), "an object of settings");
      const o = options as Record<string, unknown>;
      const report: HealthReport = { ok: true, backend: this.id, kind: this.kind };
      if (typeof o.sd_model_checkpoint === "string") report.checkpoint = o.sd_model_checkpoint;
      return report;
    } catch (e) {
      return { ok: false, backend: this.id, kind: this.kind, error: toPickrankError(e, "BACKEND_UNREACHABLE").toJSON() };
    }
  }

  /** What decides the pixels beyond the request: images per txt2img call (seeds within a call follow A1111's own rule). */
  fingerprint(): Record<string, unknown> {
    return { kind: this.kind, batchSize: this.batchSize };
  }

  async close(): Promise<void> {
    for (const ac of this.live) ac.abort(new PickrankError("ABORTED", `${this.id} was closed`));
    this.live.clear();
  }

  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this.id, req);
    const who = this.id;
    const p = req.params ?? {};
    const size = Math.max(1, p.batchSize ?? this.batchSize);
    // A1111 gives image k of a batch the seed seed + k: batch only runs of consecutive seeds.
    const chunks: number[][] = [];
    for (let i = 0; i < req.n; i++) {
      const last = chunks[chunks.length - 1];
      const prev = last?.[last.length - 1];
      if (last && prev !== undefined && last.length < size && seeds[i] === seeds[prev]! + 1) last.push(i);
      else chunks.push([i]);
    }
    const ac = new AbortController();
    this.live.add(ac);
    const onUserAbort = (): void => ac.abort(req.signal?.reason);
    req.signal?.addEventListener("abort", onUserAbort, { once: true });
    const channel = new Channel<Generated>();
    ac.signal.addEventListener("abort", () => channel.close(abortError(who, ac.signal.reason)), { once: true });
    let inFlight = false;
    let resolved = 0;
    const settle = (g: Generated): void => {
      resolved++;
      channel.push(g);
      if (resolved >= req.n) channel.close();
    };
    const fail = (indices: number[], error: PickrankError): void => {
      for (const index of indices) {
        emit({ type: "candidate-failed", backend: who, key: keys[index]!, seed: seeds[index]!, error });
        settle({ ok: false, key: keys[index]!, seed: seeds[index]!, backend: who, error });
      }
    };

    const body = (chunk: number[]): Record<string, unknown> => {
      const b: Record<string, unknown> = {
        prompt: req.prompt,
        negative_prompt: req.negativePrompt ?? "",
        seed: seeds[chunk[0]!],
        subseed_strength: 0,
        batch_size: chunk.length,
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
    };

    const renderChunk = async (chunk: number[]): Promise<void> => {
      const postAt = Date.now();
      let startedAt: number | undefined;
      let polling: NodeJS.Timeout | undefined;
      if (this.progressIntervalMs > 0) {
        let busy = false;
        polling = setInterval(() => {
          if (busy) return;
          busy = true;
          this.http
            .request("GET", "/sdapi/v1/progress", { query: { skip_current_image: "true" }, retries: 0, signal: ac.signal })
            .then((raw) => {
              const r = progressSchema.safeParse(raw);
              const st = r.success ? r.data.state : undefined;
              if (inFlight && st?.sampling_steps && st.sampling_step !== undefined && st.sampling_step > 0) {
                startedAt ??= Date.now();
                const e: BackendEvent = { type: "progress", backend: who, step: st.sampling_step, steps: st.sampling_steps };
                if (chunk.length === 1) e.key = keys[chunk[0]!]!;
                emit(e);
              }
            })
            .catch(() => undefined) // progress is a nicety; the render request reports real failures
            .finally(() => (busy = false));
        }, this.progressIntervalMs);
        polling.unref();
      }
      let raw: unknown;
      try {
        inFlight = true;
        raw = await this.http.request("POST", "/sdapi/v1/txt2img", { json: body(chunk), timeoutMs: this.generationTimeoutMs, retries: 0, signal: ac.signal });
      } finally {
        inFlight = false;
        if (polling) clearInterval(polling);
      }
      const doneAt = Date.now();
      const route = "POST /sdapi/v1/txt2img";
      const r = txt2imgResponse.safeParse(raw);
      if (!r.success) throw protocolError(who, route, preview(JSON.stringify(raw) ?? ""), "{ images: base64[], parameters, info: JSON string }");
      let info: z.infer<typeof infoSchema>;
      try {
        const parsed = infoSchema.safeParse(JSON.parse(r.data.info));
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message ?? "invalid");
        info = parsed.data;
      } catch (e) {
        throw protocolError(who, route, `an info field that is not the expected JSON (${preview(r.data.info)})`, "a JSON string with all_seeds and index_of_first_image", e);
      }
      // A grid image comes first when the server is set to return grids; skip it.
      const images = r.data.images.slice(info.index_of_first_image ?? 0);
      chunk.forEach((index, k) => {
        const b64 = images[k];
        const requested = seeds[index]!;
        if (b64 === undefined) {
          fail([index], new PickrankError("BACKEND_PROTOCOL", `${who} returned ${images.length} image(s) for a batch of ${chunk.length} (interrupted on the server?)`, { details: { backend: who, seed: requested } }));
          return;
        }
        const image = Buffer.from(b64.replace(/^data:image\/\w+;base64,/, ""), "base64");
        const format = sniffFormat(image);
        if (format === undefined) {
          fail([index], new PickrankError("BACKEND_PROTOCOL", `${who} returned images[${k + (info.index_of_first_image ?? 0)}] that is not a base64 PNG, JPEG or WebP (${preview(b64, 24)})`, { details: { backend: who, seed: requested } }));
          return;
        }
        const seed = info.all_seeds?.[k] ?? requested;
        const start = startedAt ?? postAt;
        const c: Candidate = {
          ok: true,
          key: keys[index]!,
          seed,
          image,
          format,
          backend: who,
          timings: { queuedMs: start - postAt, renderMs: doneAt - start, totalMs: Date.now() - postAt },
        };
        if (chunk.length > 1) c.batchIndex = k;
        if (seed !== requested) c.meta = { requestedSeed: requested };
        emit({ type: "candidate", backend: who, key: keys[index]!, seed });
        settle(c);
      });
    };

    for (const chunk of chunks) for (const index of chunk) emit({ type: "queued", backend: who, key: keys[index]!, seed: seeds[index]! });
    // Requests run one after another (the server serializes them anyway) while the caller consumes.
    const producer = (async () => {
      for (let c = 0; c < chunks.length; c++) {
        const chunk = chunks[c]!;
        try {
          await renderChunk(chunk);
        } catch (e) {
          if (ac.signal.aborted) return;
          const err = toPickrankError(e, "BACKEND_PROTOCOL");
          // Nothing made yet: the caller gets the error itself (unreachable, rejected parameters).
          if (resolved === 0) {
            channel.close(err);
            return;
          }
          fail(chunk, err);
          if (isPickrankError(err) && (err.code === "BACKEND_UNREACHABLE" || err.code === "TIMEOUT" || err.code === "BACKEND_PROTOCOL")) {
            for (const rest of chunks.slice(c + 1)) fail(rest, err);
            return;
          }
        }
      }
    })();
    void producer;

    try {
      for (;;) {
        const r = await channel.next();
        if (r.done) break;
        yield r.value;
      }
    } catch (e) {
      if (ac.signal.aborted) throw abortError(who, ac.signal.reason);
      throw e;
    } finally {
      const busy = inFlight;
      req.signal?.removeEventListener("abort", onUserAbort);
      this.live.delete(ac);
      if (!ac.signal.aborted) ac.abort();
      // Cancelled or abandoned mid-render: stop the server's work (A1111 has one job at a time).
      if (busy) await this.http.request("POST", "/sdapi/v1/interrupt", { expect: "none", timeoutMs: 5000, retries: 0 }).catch(() => undefined);
    }
  }
}

import { randomUUID } from "node:crypto";
import type WebSocket from "ws";
import { PickrankError, invalidParameter, isPickrankError, toPickrankError } from "@pickrank/contract";
import { ComfyClient, type ComfyClientOptions, type HistoryEntry } from "./client.ts";
import { DEFAULT_TXT2IMG_WORKFLOW } from "./default-workflow.ts";
import { applyWorkflow, detectWorkflow, parseWorkflow, type ComfyWorkflow, type NodeOverrides, type WorkflowPlan } from "./workflow.ts";
import type { Backend, BackendEvent, Candidate, GenerateRequest, Generated, GenerationParams, HealthReport } from "@pickrank/contract";
import { Channel, abortError, beginRun, sleep, sniffFormat } from "../util.ts";

export interface ComfyUIOptions extends ComfyClientOptions {
  /** API-format workflow (object or JSON text); default: the shipped SD1.5/SDXL text-to-image graph. */
  workflow?: unknown;
  /** Node ids to use where detection is ambiguous or wrong. */
  nodes?: NodeOverrides;
  /**
   * "seeds" (default): one queued prompt per candidate, each with its own seed (reproducible one by one).
   * "batch": prompts of params.batchSize images (default n) sharing one seed; candidates record batchIndex.
   */
  mode?: "seeds" | "batch";
  /** Fail the run when nothing at all was heard from the server for this long (ms; default 300000). */
  idleTimeoutMs?: number;
  /** How often to look at /history while the socket is down or silent (ms; default 1000). */
  pollIntervalMs?: number;
  /** Silence on an open socket after which /history is polled too (ms; default 5000). */
  watchdogMs?: number;
  /** Attempts to reopen a dropped WebSocket before relying on /history alone (default 5). */
  reconnectAttempts?: number;
  /** Time limit for opening the WebSocket (ms; default 10000). */
  connectTimeoutMs?: number;
}

interface Job {
  indices: number[];
  seed: number;
  workflow: ComfyWorkflow;
  promptId?: string;
  state: "waiting" | "queued" | "running" | "finishing" | "done";
  postAt: number;
  queuedAt?: number;
  startedAt?: number;
}

const SERVER_LEVEL = new Set(["BACKEND_UNREACHABLE", "TIMEOUT", "BACKEND_PROTOCOL"]);

/** ComfyUI over HTTP + WebSocket: N seeds queued as N prompts, images read from /history + /view or binary frames. */
export class ComfyUIBackend implements Backend {
  readonly kind = "comfyui";
  /** ComfyUI accepts seeds up to 2^64 − 1; JSON numbers in JavaScript stay exact up to 2^53 − 1. */
  readonly maxSeed = Number.MAX_SAFE_INTEGER;
  readonly id: string;
  readonly client: ComfyClient;
  readonly workflow: ComfyWorkflow;
  readonly plan: WorkflowPlan;
  private readonly opts: Required<Pick<ComfyUIOptions, "idleTimeoutMs" | "pollIntervalMs" | "watchdogMs" | "reconnectAttempts" | "connectTimeoutMs">> & { mode: "seeds" | "batch" };
  private checkpoints: Promise<string[]> | undefined;
  private readonly live = new Set<AbortController>();

  constructor(url: string, options: ComfyUIOptions = {}) {
    this.client = new ComfyClient(url, options);
    this.id = this.client.id;
    this.workflow = options.workflow === undefined ? structuredClone(DEFAULT_TXT2IMG_WORKFLOW) : parseWorkflow(options.workflow);
    this.plan = detectWorkflow(this.workflow, options.nodes);
    const mode = options.mode ?? "seeds";
    if (mode !== "seeds" && mode !== "batch") throw invalidParameter("mode", "\"seeds\" or \"batch\"", mode);
    if (mode === "batch" && this.plan.batch === undefined) {
      throw new PickrankError("BAD_INPUT", "Expected a workflow with an empty-latent node holding batch_size for mode \"batch\" but found none; use mode \"seeds\" or name it with options.nodes.latent", { details: { parameter: "mode" } });
    }
    this.opts = {
      mode,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
      pollIntervalMs: options.pollIntervalMs ?? 1000,
      watchdogMs: options.watchdogMs ?? 5000,
      reconnectAttempts: options.reconnectAttempts ?? 5,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
    };
  }

  /** Checkpoint names the server offers (cached per backend). */
  listCheckpoints(signal?: AbortSignal): Promise<string[]> {
    return this.client.listCheckpoints(signal);
  }

  /** GET /system_stats and /queue: up when both answer; ComfyUI's version and the queue's length. */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    try {
      const stats = await this.client.systemStats(signal);
      const q = await this.client.queue(signal);
      const system = (stats.system ?? {}) as Record<string, unknown>;
      const report: HealthReport = { ok: true, backend: this.id, kind: this.kind, queue: { running: q.running.length, pending: q.pending.length } };
      if (typeof system.comfyui_version === "string") report.version = system.comfyui_version;
      return report;
    } catch (e) {
      return { ok: false, backend: this.id, kind: this.kind, error: toPickrankError(e, "BACKEND_UNREACHABLE").toJSON() };
    }
  }

  /** What decides the pixels beyond the request: the API workflow (before our prompt and seeds go in) and the mode. */
  fingerprint(): Record<string, unknown> {
    return { kind: this.kind, workflow: this.workflow, mode: this.opts.mode };
  }

  async close(): Promise<void> {
    for (const ac of this.live) ac.abort(new PickrankError("ABORTED", `${this.id} was closed`));
    this.live.clear();
  }

  /** The workflow's ckpt_name, filled from params or the server's list when the workflow leaves it empty. */
  private async checkpointFor(params: GenerationParams, signal: AbortSignal): Promise<string | undefined> {
    if (params.checkpoint !== undefined || this.plan.checkpoint === undefined) return params.checkpoint;
    const current = this.workflow[this.plan.checkpoint.node]?.inputs[this.plan.checkpoint.input];
    if (typeof current === "string" && current !== "") return undefined;
    this.checkpoints ??= this.client.listCheckpoints(signal);
    let list: string[];
    try {
      list = await this.checkpoints;
    } catch (e) {
      this.checkpoints = undefined;
      throw e;
    }
    const first = list[0];
    if (first === undefined) {
      throw new PickrankError("BACKEND_REJECTED", `${this.id} lists no checkpoints for CheckpointLoaderSimple; put a model in ComfyUI's models/checkpoints or pass params.checkpoint`, { details: { backend: this.id } });
    }
    return first;
  }

  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this.id, req);
    const who = this.id;
    const client = this.client;
    const plan = this.plan;
    const o = this.opts;
    const ac = new AbortController();
    this.live.add(ac);
    const onUserAbort = (): void => ac.abort(req.signal?.reason);
    req.signal?.addEventListener("abort", onUserAbort, { once: true });

    const params: GenerationParams = { ...req.params };
    const channel = new Channel<Generated>();
    const jobs: Job[] = [];
    const byPrompt = new Map<string, Job>();
    const early = new Map<string, { type: string; data: Record<string, unknown> }[]>();
    const wsImages = new Map<string, Buffer[]>();
    let resolved = 0;
    let socket: WebSocket | undefined;
    let socketOpen = false;
    let stopped = false;
    let lastActivity = Date.now();
    let lastSocketMessage = Date.now();
    let currentPrompt: string | undefined;
    let currentNode: string | undefined;
    let timer: NodeJS.Timeout | undefined;

    const resolveIndex = (g: Generated): void => {
      resolved++;
      channel.push(g);
      if (resolved >= req.n) channel.close();
    };
    const failJob = (job: Job, error: PickrankError): void => {
      if (job.state === "done") return;
      job.state = "done";
      for (const index of job.indices) {
        const seed = job.seed;
        emit({ type: "candidate-failed", backend: who, key: keys[index]!, seed, error });
        resolveIndex({ ok: false, key: keys[index]!, seed, backend: who, error });
      }
    };
    const failAllPending = (error: PickrankError): void => {
      for (const j of jobs) if (j.state !== "done") failJob(j, error);
    };
    ac.signal.addEventListener("abort", () => channel.close(abortError(who, ac.signal.reason)), { once: true });

    try {
      const checkpoint = await this.checkpointFor(params, ac.signal);
      if (checkpoint !== undefined) params.checkpoint = checkpoint;
      const size = o.mode === "batch" ? Math.min(params.batchSize ?? req.n, req.n) : 1;
      for (let start = 0; start < req.n; start += size) {
        const indices = Array.from({ length: Math.min(size, req.n - start) }, (_, k) => start + k);
        const seed = seeds[start]!;
        const v = { prompt: req.prompt, seed, batchSize: indices.length, params };
        const workflow = applyWorkflow(this.workflow, plan, req.negativePrompt === undefined ? v : { ...v, negativePrompt: req.negativePrompt });
        jobs.push({ indices, seed, workflow, state: "waiting", postAt: 0 });
      }

      // --- results -------------------------------------------------------------------------------
      const finish = async (job: Job, entry?: HistoryEntry): Promise<void> => {
        if (job.state === "done" || job.state === "finishing" || job.promptId === undefined) return;
        const pid = job.promptId;
        const before = job.state;
        job.state = "finishing";
        try {
          let h = entry;
          // execution_success comes before the server writes history; give it a moment.
          for (let i = 0; h === undefined && i < 4; i++) {
            h = await client.history(pid, ac.signal);
            if (h === undefined) await sleep(50 * (i + 1), ac.signal);
          }
          if (h === undefined) {
            job.state = before; // not finished after all; the poller looks again
            return;
          }
          const doneAt = Date.now();
          lastActivity = doneAt;
          if (h.status?.status_str === "error") {
            failJob(job, executionError(who, pid, h));
            return;
          }
          let images: Buffer[];
          if (plan.websocketOutput) {
            images = wsImages.get(pid) ?? [];
            if (images.length === 0) {
              failJob(job, new PickrankError("BACKEND_PROTOCOL", `${who} finished prompt ${pid} but sent no SaveImageWebsocket frames on our socket (the socket may have dropped while it ran, or ComfyUI reused a cached result); use SaveImage to survive reconnects`, { details: { backend: who, promptId: pid } }));
              return;
            }
          } else {
            const refs = plan.outputs.flatMap((out) => h.outputs[out.node]?.images ?? []);
            images = await Promise.all(refs.slice(0, job.indices.length).map((r) => client.view({ filename: r.filename, subfolder: r.subfolder, type: r.type }, ac.signal)));
          }
          const startedAt = job.startedAt ?? job.queuedAt ?? job.postAt;
          const now = Date.now();
          job.state = "done";
          job.indices.forEach((index, b) => {
            const image = images[b];
            const format = image ? sniffFormat(image) : undefined;
            if (image === undefined || format === undefined) {
              const error = image === undefined
                ? new PickrankError("BACKEND_PROTOCOL", `${who} returned ${images.length} image(s) for prompt ${pid} but ${job.indices.length} were expected from ${plan.outputs.map((x) => `${x.classType} #${x.node}`).join(", ")}`, { details: { backend: who, promptId: pid } })
                : new PickrankError("BACKEND_PROTOCOL", `${who} sent image bytes for prompt ${pid} that are not PNG, JPEG or WebP (first bytes ${image.subarray(0, 8).toString("hex")})`, { details: { backend: who, promptId: pid } });
              emit({ type: "candidate-failed", backend: who, key: keys[index]!, seed: job.seed, error });
              resolveIndex({ ok: false, key: keys[index]!, seed: job.seed, backend: who, error });
              return;
            }
            const c: Candidate = {
              ok: true,
              key: keys[index]!,
              seed: job.seed,
              image,
              format,
              backend: who,
              timings: { queuedMs: Math.max(0, startedAt - (job.queuedAt ?? job.postAt)), renderMs: Math.max(0, doneAt - startedAt), totalMs: now - job.postAt },
              meta: { promptId: pid },
            };
            if (o.mode === "batch") c.batchIndex = b;
            emit({ type: "candidate", backend: who, key: keys[index]!, seed: job.seed });
            resolveIndex(c);
          });
        } catch (e) {
          if (ac.signal.aborted) return;
          const err = toPickrankError(e, "BACKEND_PROTOCOL", `${who} prompt ${pid}`);
          if (SERVER_LEVEL.has(err.code)) failAllPending(err);
          else failJob(job, err);
        }
      };

      // --- socket ----------------------------------------------------------------------------------
      const handle = (type: string, data: Record<string, unknown>): void => {
        const pid = typeof data.prompt_id === "string" ? data.prompt_id : currentPrompt;
        if (type === "execution_start" || (type === "executing" && data.node !== null)) {
          if (pid !== undefined) currentPrompt = pid;
          if (type === "executing") currentNode = String(data.node);
        }
        if (pid === undefined) return;
        const job = byPrompt.get(pid);
        if (job === undefined) {
          // Events can beat the POST /prompt answer; keep them until the id is known.
          if (type !== "status") early.set(pid, [...(early.get(pid) ?? []), { type, data }]);
          return;
        }
        switch (type) {
          case "execution_start":
          case "executing":
          case "execution_cached":
            if (job.state === "queued") job.state = "running";
            job.startedAt ??= Date.now();
            if (type === "executing" && data.node === null) {
              currentNode = undefined;
              void finish(job);
            }
            break;
          case "progress":
            if (typeof data.value === "number" && typeof data.max === "number") {
              const e: BackendEvent = { type: "progress", backend: who, step: data.value, steps: data.max };
              if (job.indices.length === 1) e.key = keys[job.indices[0]!]!;
              emit(e);
            }
            break;
          case "execution_success":
            break; // history is written after this; `executing` with node null follows
          case "execution_error":
            failJob(job, executionErrorFromMessage(who, pid, data));
            break;
          case "execution_interrupted":
            failJob(job, new PickrankError("ABORTED", `${who} interrupted prompt ${pid} at ${String(data.node_type ?? "node")} #${String(data.node_id ?? "?")} (someone pressed Cancel or called /interrupt)`, { details: { backend: who, promptId: pid } }));
            break;
        }
      };
      const onBinary = (buf: Buffer): void => {
        if (buf.length < 8) return;
        const event = buf.readUInt32BE(0);
        let image: Buffer | undefined;
        let pid = currentPrompt;
        let node = currentNode;
        if (event === 1) image = buf.subarray(8); // PREVIEW_IMAGE: event, format (1 JPEG, 2 PNG), bytes
        else if (event === 4) {
          // PREVIEW_IMAGE_WITH_METADATA: event, metadata length, metadata JSON, bytes
          const len = buf.readUInt32BE(4);
          try {
            const meta = JSON.parse(buf.subarray(8, 8 + len).toString("utf8")) as { prompt_id?: string; node_id?: string };
            pid = meta.prompt_id ?? pid;
            node = meta.node_id ?? node;
          } catch {
            return;
          }
          image = buf.subarray(8 + len);
        }
        // Only frames sent while a SaveImageWebsocket node of ours runs are images; the rest are sampler previews.
        if (image === undefined || pid === undefined || node === undefined || !plan.outputs.some((x) => x.node === node && x.classType === "SaveImageWebsocket")) return;
        wsImages.set(pid, [...(wsImages.get(pid) ?? []), Buffer.from(image)]);
      };
      const attach = (ws: WebSocket): void => {
        socket = ws;
        socketOpen = true;
        ws.on("message", (raw: WebSocket.RawData, isBinary: boolean) => {
          lastActivity = lastSocketMessage = Date.now();
          const buf = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
          if (isBinary) return onBinary(buf);
          let msg: unknown;
          try {
            msg = JSON.parse(buf.toString("utf8"));
          } catch {
            return; // unreadable text frame: /history still tells us when prompts finish
          }
          const m = msg as { type?: unknown; data?: unknown };
          if (typeof m.type === "string" && m.data !== null && typeof m.data === "object") handle(m.type, m.data as Record<string, unknown>);
        });
        ws.on("error", () => undefined);
        ws.on("close", () => {
          if (socket !== ws) return;
          socketOpen = false;
          if (!stopped) void reconnect();
        });
      };
      const reconnect = async (): Promise<void> => {
        for (let attempt = 0; attempt < o.reconnectAttempts && !stopped; attempt++) {
          try {
            await sleep(Math.min(100 * 2 ** attempt, 2000), ac.signal);
            const ws = await client.openSocket(clientId, o.connectTimeoutMs);
            if (stopped) {
              ws.terminate();
              return;
            }
            attach(ws);
            void poll(); // catch up on prompts that finished while we were away
            return;
          } catch {
            // next attempt; after the last one /history polling carries on alone
          }
        }
      };

      // --- polling /history: the safety net for dropped sockets and lost messages -------------------
      let polling = false;
      const poll = async (): Promise<void> => {
        if (polling || stopped) return;
        polling = true;
        try {
          for (const job of jobs) {
            if (stopped || job.promptId === undefined || (job.state !== "queued" && job.state !== "running")) continue;
            const h = await client.history(job.promptId, ac.signal);
            if (h !== undefined) await finish(job, h);
          }
        } catch (e) {
          if (!ac.signal.aborted) failAllPending(toPickrankError(e, "BACKEND_UNREACHABLE"));
        } finally {
          polling = false;
        }
      };
      const tick = (): void => {
        if (stopped) return;
        const now = Date.now();
        if (now - lastActivity > o.idleTimeoutMs) {
          const ids = unfinishedIds(jobs);
          failAllPending(new PickrankError("TIMEOUT", `${who} sent nothing for ${o.idleTimeoutMs} ms while ${jobs.filter((j) => j.state !== "done").length} prompt(s) were unfinished (raise idleTimeoutMs for slow model loads)`, { details: { backend: who, idleTimeoutMs: o.idleTimeoutMs } }));
          void cancelPrompts(client, ids);
          return;
        }
        if (!socketOpen || now - lastSocketMessage > o.watchdogMs) void poll();
      };

      const clientId = randomUUID().replace(/-/g, "");
      try {
        attach(await client.openSocket(clientId, o.connectTimeoutMs));
      } catch (e) {
        // No socket (a proxy that refuses or stalls the upgrade) is survivable through /history; no server is not.
        if (!isPickrankError(e) || e.code === "BACKEND_UNREACHABLE") throw e;
      }
      timer = setInterval(tick, Math.min(o.pollIntervalMs, 1000));
      timer.unref();

      const submit = async (job: Job): Promise<void> => {
        job.postAt = Date.now();
        const { promptId } = await client.queuePrompt(job.workflow, clientId, ac.signal);
        lastActivity = job.queuedAt = Date.now();
        job.promptId = promptId;
        job.state = "queued";
        byPrompt.set(promptId, job);
        for (const index of job.indices) emit({ type: "queued", backend: who, key: keys[index]!, seed: job.seed });
        for (const m of early.get(promptId) ?? []) handle(m.type, m.data);
        early.delete(promptId);
      };
      // The first prompt decides whether anything can be done (rejected workflow, dead server): throw then.
      await submit(jobs[0]!);
      const rest = (async () => {
        for (const job of jobs.slice(1)) {
          if (stopped) return;
          try {
            await submit(job);
          } catch (e) {
            if (ac.signal.aborted) return;
            const err = toPickrankError(e, "BACKEND_REJECTED");
            failJob(job, err);
            if (SERVER_LEVEL.has(err.code)) {
              for (const j of jobs) if (j.state === "waiting") failJob(j, err);
              return;
            }
          }
        }
      })();
      void rest;

      for (;;) {
        const r = await channel.next();
        if (r.done) break;
        yield r.value;
      }
      stopped = true;
    } catch (e) {
      if (ac.signal.aborted) throw abortError(who, ac.signal.reason);
      throw e;
    } finally {
      const unfinished = unfinishedIds(jobs);
      stopped = true;
      if (timer) clearInterval(timer);
      req.signal?.removeEventListener("abort", onUserAbort);
      this.live.delete(ac);
      const s = socket;
      socket = undefined;
      s?.removeAllListeners("close");
      s?.close();
      // Stop queueing first (an in-flight POST /prompt is abandoned), then take our prompts off the
      // server so the GPU is free again.
      if (!ac.signal.aborted) ac.abort();
      if (unfinished.length > 0) await cancelPrompts(client, unfinished);
    }
  }
}

function unfinishedIds(jobs: Job[]): string[] {
  return jobs.filter((j) => j.promptId !== undefined && j.state !== "done").map((j) => j.promptId!);
}

/** Deletes our queued prompts and interrupts ours if it runs (/interrupt stops whatever runs, maybe someone else's job). */
async function cancelPrompts(client: ComfyClient, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const mine = new Set(ids);
  await client.deleteQueued(ids, AbortSignal.timeout(5000)).catch(() => undefined);
  const q = await client.queue(AbortSignal.timeout(5000)).catch(() => undefined);
  for (const id of q?.running ?? []) if (mine.has(id)) await client.interrupt(id, AbortSignal.timeout(5000)).catch(() => undefined);
}

function executionErrorFromMessage(who: string, pid: string, d: Record<string, unknown>): PickrankError {
  const where = `${String(d.node_type ?? "node")} #${String(d.node_id ?? "?")}`;
  const what = [d.exception_type, d.exception_message].filter((x) => typeof x === "string" && x !== "").join(": ");
  return new PickrankError("BACKEND_REJECTED", `${who} failed prompt ${pid} at ${where}: ${what.trim() || "no message"}`, {
    details: { backend: who, promptId: pid, node: d.node_id, classType: d.node_type, exceptionType: d.exception_type },
  });
}

function executionError(who: string, pid: string, h: HistoryEntry): PickrankError {
  for (const m of h.status?.messages ?? []) {
    if (m[0] === "execution_error" && m[1] && typeof m[1] === "object") return executionErrorFromMessage(who, pid, m[1] as Record<string, unknown>);
    if (m[0] === "execution_interrupted") return new PickrankError("ABORTED", `${who} interrupted prompt ${pid}`, { details: { backend: who, promptId: pid } });
  }
  return new PickrankError("BACKEND_REJECTED", `${who} reports prompt ${pid} as failed (status "error") without a message`, { details: { backend: who, promptId: pid } });
}

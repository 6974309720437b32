import { PickrankError, invalidParameter, isPickrankError, toPickrankError } from "@pickrank/contract";
import type { Backend, GenerateRequest, Generated, GenerationParams, HealthReport } from "@pickrank/contract";
import { beginRun, closeRuns, drainRun, isPositiveInt, runController } from "../util.ts";
import { ComfyClient, type ComfyClientOptions } from "./client.ts";
import { DEFAULT_TXT2IMG_WORKFLOW } from "./default-workflow.ts";
import { ComfyRun, type Job, type RunLimits } from "./run.ts";
import { settingsFromWorkflow } from "./settings.ts";
import {
  applyWorkflow,
  detectWorkflow,
  parseWorkflow,
  type ComfyWorkflow,
  type NodeOverrides,
  type ObjectInfo,
  type WorkflowPlan,
} from "./workflow.ts";

/** ComfyUIBackend's options; every time is in milliseconds. */
export interface ComfyUIOptions extends ComfyClientOptions {
  /** API-format workflow (object or JSON text); default: the shipped SD1.5/SDXL text-to-image graph. */
  workflow?: unknown;
  /** Node ids to use where detection is ambiguous or wrong. */
  nodes?: NodeOverrides;
  /**
   * Images per queued prompt when the request's params.batchSize is not given (default 1). A batch's
   * images share the prompt's seed; candidates report that seed and their batchIndex.
   */
  batchSize?: number;
  /**
   * Our prompts on the server at once, waiting or rendering (default 2: one renders while the next
   * waits, so the GPU never idles, and a killed run leaves at most this many behind).
   */
  maxQueued?: number;
  /**
   * BACKEND_STALLED when the server answers nothing (socket and HTTP) for this long, or our running
   * prompt shows no progress (no step, no node) for this long (default 300000). Waiting in the
   * queue behind other clients' work never counts.
   */
  stallTimeoutMs?: number;
  /** How often /queue (and /history) are read while the socket is down or silent (default 1000). */
  pollIntervalMs?: number;
  /** Socket silence after which polling starts (default 5000). */
  watchdogMs?: number;
  /** Attempts to reopen a dropped WebSocket before relying on polling alone (default 5). */
  reconnectAttempts?: number;
  /** Time limit for opening the WebSocket (default 10000). */
  connectTimeoutMs?: number;
}

function positiveInt(o: ComfyUIOptions, name: keyof ComfyUIOptions, fallback: number): number {
  const v = o[name] ?? fallback;
  if (!isPositiveInt(v)) throw invalidParameter(name, "positive integer", v);
  return v;
}

/**
 * ComfyUI over HTTP + WebSocket (kind "comfyui"). Each candidate (or batch, see ComfyUIOptions.batchSize)
 * is one queued prompt with its own seed, at most `maxQueued` of ours on the server at a time; images
 * come from /history + /view, or from binary frames for SaveImageWebsocket. Candidates carry
 * `meta.comfyPrompt` (the API prompt queued), `meta.settings` (read from it) and `meta.promptId`.
 * Seeds: 0 … 2^53 − 1 (ComfyUI takes 64-bit seeds; JSON numbers stay exact up to 2^53 − 1).
 * Constructor throws BAD_INPUT for a bad URL, workflow or option.
 */
export class ComfyUIBackend implements Backend {
  readonly kind = "comfyui";
  readonly maxSeed = Number.MAX_SAFE_INTEGER;
  readonly id: string;
  readonly client: ComfyClient;
  readonly workflow: ComfyWorkflow;
  private readonly nodes: NodeOverrides;
  /** The reading of the graph alone (constructor), or why it refused. */
  private graphPlan: WorkflowPlan | undefined;
  private graphError: PickrankError | undefined;
  /** The reading with the server's /object_info, once per backend (reset when it could not be had). */
  private serverPlan: Promise<WorkflowPlan> | undefined;
  private readPlan: WorkflowPlan | undefined;
  private notesSaid = false;
  /** Set by close(). */
  closed = false;
  private readonly batchSize: number;
  private readonly limits: RunLimits;
  private checkpoints: Promise<string[]> | undefined;
  private readonly live = new Set<AbortController>();
  private readonly busy = { warned: false };

  constructor(url: string, options: ComfyUIOptions = {}) {
    this.client = new ComfyClient(url, options);
    this.id = this.client.id;
    this.workflow = options.workflow === undefined ? structuredClone(DEFAULT_TXT2IMG_WORKFLOW) : parseWorkflow(options.workflow);
    this.nodes = options.nodes ?? {};
    try {
      this.graphPlan = detectWorkflow(this.workflow, this.nodes);
    } catch (e) {
      // A graph the walk cannot read alone may read right with the server's node types: decide at the server.
      if (!isPickrankError(e) || e.code !== "BAD_INPUT") throw e;
      this.graphError = e;
    }
    if ("mode" in options) {
      throw new PickrankError(
        "BAD_INPUT",
        "Expected params.batchSize (or options.batchSize) for batches but received options.mode, which is gone: " +
          "batchSize > 1 renders batches sharing a seed",
        { details: { parameter: "mode" } },
      );
    }
    this.batchSize = positiveInt(options, "batchSize", 1);
    this.limits = {
      maxQueued: positiveInt(options, "maxQueued", 2),
      stallTimeoutMs: positiveInt(options, "stallTimeoutMs", 300_000),
      pollIntervalMs: positiveInt(options, "pollIntervalMs", 1000),
      watchdogMs: positiveInt(options, "watchdogMs", 5000),
      reconnectAttempts: options.reconnectAttempts ?? 5,
      connectTimeoutMs: positiveInt(options, "connectTimeoutMs", 10_000),
    };
  }

  /**
   * The workflow plan in use: read with the server's /object_info once a run or check() reached the
   * server, from the graph alone before. Throws the refusal (BAD_INPUT) when neither reading works.
   */
  get plan(): WorkflowPlan {
    const plan = this.readPlan ?? this.graphPlan;
    if (plan === undefined) throw this.graphError!;
    return plan;
  }

  /**
   * Reads the workflow with the server's /object_info (input types, output_node flags), so custom
   * encoders, text nodes and savers are found by type; a server that does not answer /object_info
   * (an old one, a proxy) leaves the graph-only reading. Throws BAD_INPUT (refusal), BACKEND_* (server).
   */
  async resolvePlan(signal?: AbortSignal): Promise<WorkflowPlan> {
    this.serverPlan ??= this.readWithServer(signal).catch((e: unknown) => {
      this.serverPlan = undefined;
      throw e;
    });
    return this.serverPlan;
  }

  private async readWithServer(signal?: AbortSignal): Promise<WorkflowPlan> {
    let objectInfo: ObjectInfo | undefined;
    try {
      objectInfo = await this.client.objectInfo(signal);
    } catch (e) {
      const err = toPickrankError(e, "BACKEND_PROTOCOL");
      if (signal?.aborted || ["BACKEND_UNREACHABLE", "BACKEND_AUTH", "ABORTED", "CLOSED"].includes(err.code)) throw err;
    }
    const plan = objectInfo === undefined ? this.plan : detectWorkflow(this.workflow, this.nodes, { objectInfo });
    this.readPlan = plan;
    return plan;
  }

  /** Checkpoint names the server offers (CheckpointLoaderSimple's list). Throws like every request (BACKEND_*). */
  listCheckpoints(signal?: AbortSignal): Promise<string[]> {
    return this.client.listCheckpoints(signal);
  }

  /**
   * GET /system_stats and /queue: up when both answer; ComfyUI's version and the queue's length. Then
   * the workflow is read with the server's /object_info: a refusal makes the report ok: false with
   * that BAD_INPUT error (the server is up, but this workflow cannot run); so does a server that does not
   * answer when the graph alone already refused the workflow (the refusal is what to fix). Never throws.
   */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    try {
      const stats = await this.client.systemStats(signal);
      const q = await this.client.queue(signal);
      const system = (stats.system ?? {}) as Record<string, unknown>;
      const report: HealthReport = {
        ok: true,
        backend: this.id,
        kind: this.kind,
        queue: { running: q.running.length, pending: q.pending.length },
      };
      if (typeof system.comfyui_version === "string") report.version = system.comfyui_version;
      try {
        await this.resolvePlan(signal);
      } catch (e) {
        const err = toPickrankError(e);
        if (err.code === "BAD_INPUT") return { ...report, ok: false, error: err.toJSON() };
        throw err;
      }
      return report;
    } catch (e) {
      const err = toPickrankError(e, "BACKEND_UNREACHABLE");
      // The graph alone already refused the workflow: that is what the user has to fix, server or not.
      if (this.graphError && err.code !== "BAD_INPUT") {
        const refusal = new PickrankError(
          "BAD_INPUT",
          `Read from the graph alone (${this.id} did not answer, so its node types could not be asked): ${this.graphError.message}`,
          { cause: err, details: { ...this.graphError.details, server: err.toJSON() } },
        );
        return { ok: false, backend: this.id, kind: this.kind, error: refusal.toJSON() };
      }
      return { ok: false, backend: this.id, kind: this.kind, error: err.toJSON() };
    }
  }

  /** What decides the pixels beyond the request: the API workflow (before our prompt and seeds go in) and the default batch size. */
  fingerprint(): Record<string, unknown> {
    return { kind: this.kind, workflow: this.workflow, nodes: this.nodes, batchSize: this.batchSize };
  }

  /** Stops every run (they throw CLOSED, after taking our prompts off the server); later generate() calls throw CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    closeRuns(this.id, this.live);
  }

  /**
   * Yields each candidate as its prompt finishes. Throws BAD_INPUT (request, seeds above maxSeed,
   * params the workflow cannot take), CLOSED, ABORTED, and BACKEND_UNREACHABLE / BACKEND_AUTH /
   * BACKEND_REJECTED / TIMEOUT when the first prompt cannot be queued; later failures are
   * `{ ok: false }` items (BACKEND_STALLED, BACKEND_REJECTED for an execution error …).
   */
  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this, req);
    const ctl = runController(req.signal, this.live);
    const signal = ctl.ac.signal;
    let run: ComfyRun | undefined;
    const open = async (): Promise<ComfyRun["results"]> => {
      const plan = await this.resolvePlan(signal);
      // What the reading left alone (a second prompt kept, a refiner seed not varied): said once per backend.
      if (!this.notesSaid) for (const message of plan.notes) emit({ type: "warning", backend: this.id, message });
      this.notesSaid = true;
      const params = await this.withCheckpoint(req.params ?? {}, signal);
      const jobs = this.jobs(req, seeds, keys, params);
      run = new ComfyRun({ who: this.id, client: this.client, plan: this.plan, limits: this.limits, emit, signal, busy: this.busy }, jobs);
      await run.start();
      void run.drive();
      return run.results;
    };
    // Our prompts still on the server are taken off it before we return.
    yield* drainRun(this.id, ctl, open, async () => run?.stop());
  }

  /** One job per prompt to queue: batchSize candidates each, seeded with the first one's seed. */
  private jobs(req: GenerateRequest, seeds: number[], keys: string[], params: GenerationParams): Job[] {
    const size = params.batchSize ?? this.batchSize;
    const jobs: Job[] = [];
    for (let start = 0; start < req.n; start += size) {
      const end = Math.min(start + size, req.n);
      const seed = seeds[start]!;
      const v = { prompt: req.prompt, seed, batchSize: end - start, params };
      const workflow = applyWorkflow(
        this.workflow,
        this.plan,
        req.negativePrompt === undefined ? v : { ...v, negativePrompt: req.negativePrompt },
      );
      jobs.push({
        keys: keys.slice(start, end),
        seed,
        requested: seeds.slice(start, end),
        workflow,
        settings: settingsFromWorkflow(workflow, this.plan),
        batched: size > 1,
      });
    }
    return jobs;
  }

  /** params with the workflow's empty ckpt_name filled from the server's first checkpoint (cached per backend). */
  private async withCheckpoint(params: GenerationParams, signal: AbortSignal): Promise<GenerationParams> {
    if (params.checkpoint !== undefined || this.plan.checkpoint === undefined) return params;
    const current = this.workflow[this.plan.checkpoint.node]?.inputs[this.plan.checkpoint.input];
    if (typeof current === "string" && current !== "") return params;
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
      throw new PickrankError(
        "BACKEND_REJECTED",
        `${this.id} lists no checkpoints for CheckpointLoaderSimple; put a model in ComfyUI's models/checkpoints or pass params.checkpoint`,
        { details: { backend: this.id } },
      );
    }
    return { ...params, checkpoint: first };
  }
}

/**
 * One generate() call on ComfyUI: queues the run's prompts with at most `maxQueued` of ours on the
 * server at a time, feeds each prompt's tracker from the socket (transport.ts) and from GET /queue
 * and /history, reads the finished prompts' images, and takes our prompts off the server when it
 * stops. Liveness comes from the server's answers: a prompt that waits behind other clients' work
 * waits as long as the server answers; BACKEND_STALLED only when the server stops answering, or our
 * running prompt shows no progress, for `stallTimeoutMs`.
 */
import { randomUUID } from "node:crypto";
import { PickrankError, toPickrankError } from "@pickrank/contract";
import type { BackendEvent, Candidate, Generated, RenderSettings } from "@pickrank/contract";
import { Channel, sleep, sniffFormat, stopError } from "../util.ts";
import type { ComfyClient, HistoryEntry } from "./client.ts";
import type { ComfyMessage, ImageFrame } from "./messages.ts";
import { historyError, PromptTracker, type TrackerAction } from "./prompt-tracker.ts";
import { ComfyTransport, type OpenSocket } from "./transport.ts";
import type { ComfyWorkflow, WorkflowPlan } from "./workflow.ts";

/** The limits of a run (ComfyUIOptions with their defaults filled in). */
export interface RunLimits {
  maxQueued: number;
  stallTimeoutMs: number;
  pollIntervalMs: number;
  watchdogMs: number;
  reconnectAttempts: number;
  connectTimeoutMs: number;
}

/** One ComfyUI prompt to queue: one image, or a batch of images sharing its seed. */
export interface Job {
  /** The caller's keys of the candidates it makes, in batch order. */
  keys: string[];
  /** The seed written into the workflow. */
  seed: number;
  /** The seed each candidate asked for (differs from `seed` past the first image of a batch). */
  requested: number[];
  /** The API prompt as queued. */
  workflow: ComfyWorkflow;
  settings: RenderSettings;
  /** Rendered as a batch (batch size > 1): candidates record their batchIndex. */
  batched: boolean;
  postAt?: number;
  tracker?: PromptTracker;
  done?: boolean;
}

export interface RunContext {
  who: string;
  client: ComfyClient;
  plan: WorkflowPlan;
  limits: RunLimits;
  emit: (e: BackendEvent) => void;
  /** Fires when the run must stop (caller's signal, close()); its reason is what the caller gets. */
  signal: AbortSignal;
  /** Shared by the backend's runs: whether the "busy with other clients" warning is out. */
  busy: { warned: boolean };
}

type Input =
  | { type: "message"; m: ComfyMessage; at: number }
  | { type: "image"; f: ImageFrame; at: number }
  | { type: "tick" | "late-tick" | "reconnected" | "lost" | "wake" };

/** Failures that say the server itself is gone, not just one prompt. */
const SERVER_LEVEL = new Set(["BACKEND_UNREACHABLE", "BACKEND_AUTH", "BACKEND_STALLED", "TIMEOUT"]);
const EARLY_LIMIT = 500;

export class ComfyRun {
  /** Candidates and failures, as each is known; closes when every candidate is settled, or with why the run stopped. */
  readonly results = new Channel<Generated>();
  private readonly inbox = new Channel<Input>();
  private readonly byPrompt = new Map<string, Job>();
  private readonly early = new Map<string, Input[]>();
  private readonly abandoned = new Set<string>();
  private readonly transport: ComfyTransport;
  private readonly startedAt = Date.now();
  private current: { promptId: string; node?: string } | undefined;
  private next = 0;
  private settled = 0;
  private readonly total: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private polling = false;
  /** When the last poll was sent (ms; 0 before any). */
  private lastAskedAt = 0;
  /** When the tick timer last fired (ms; 0 before it first does). */
  private lastTimerAt = 0;
  /**
   * Spans (ms, [from, to]) in which this process could not listen: the tick timer fired late by more than
   * its period (a blocked event loop, a starved CPU). They do not count as the server's silence, or an
   * answer that sat in the socket while we could not read it would read as a stall.
   */
  private deaf: Array<[number, number]> = [];

  constructor(
    private readonly ctx: RunContext,
    private readonly jobs: Job[],
  ) {
    this.total = jobs.reduce((t, j) => t + j.keys.length, 0);
    const open: OpenSocket = (id, t) => ctx.client.openSocket(id, t);
    this.transport = new ComfyTransport(open, randomUUID().replace(/-/g, ""), ctx.limits, {
      message: (m) => this.inbox.push({ type: "message", m, at: Date.now() }),
      image: (f) => this.inbox.push({ type: "image", f, at: Date.now() }),
      reconnected: () => this.inbox.push({ type: "reconnected" }),
      lost: () => this.inbox.push({ type: "lost" }),
    });
    ctx.signal.addEventListener("abort", () => this.halt(stopError(ctx.who, ctx.signal.reason)), { once: true });
  }

  /** Opens the socket and queues the first prompt; throws when nothing can be done (no server, rejected workflow). */
  async start(): Promise<void> {
    await this.transport.connect();
    const period = Math.max(10, this.ctx.limits.pollIntervalMs);
    this.timer = setInterval(() => {
      const now = Date.now();
      const late = this.lastTimerAt > 0 && now - this.lastTimerAt > 2 * period;
      if (late) this.deaf.push([this.lastTimerAt + period, now]);
      this.lastTimerAt = now;
      this.inbox.push({ type: late ? "late-tick" : "tick" });
    }, period);
    this.timer.unref();
    const first = this.jobs[this.next++]!;
    await this.submit(first);
  }

  /** The event loop: one input at a time, queueing more prompts as ours leave the server. Never throws. */
  async drive(): Promise<void> {
    try {
      while (!this.stopped && this.settled < this.total) {
        await this.fill();
        const r = await this.inbox.next();
        if (r.done) break;
        await this.handle(r.value);
      }
    } catch (e) {
      this.halt(this.ctx.signal.aborted ? stopError(this.ctx.who, this.ctx.signal.reason) : toPickrankError(e));
    }
  }

  /** Stops the loop and the socket, deletes our queued prompts and interrupts our running one. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.transport.close();
    this.inbox.close();
    const ids = new Set(this.abandoned);
    for (const j of this.jobs) if (j.tracker?.onServer) ids.add(j.tracker.promptId);
    await cancelPrompts(this.ctx.client, [...ids]);
  }

  private halt(error: PickrankError): void {
    this.stopped = true;
    this.inbox.close();
    this.results.close(error);
  }

  private onServerCount(): number {
    return this.jobs.filter((j) => j.tracker?.onServer).length;
  }

  private async fill(): Promise<void> {
    while (!this.stopped && this.next < this.jobs.length && this.onServerCount() < this.ctx.limits.maxQueued) {
      const job = this.jobs[this.next++]!;
      try {
        await this.submit(job);
      } catch (e) {
        if (this.ctx.signal.aborted) return;
        const err = toPickrankError(e);
        this.failJob(job, err);
        if (SERVER_LEVEL.has(err.code)) this.failAll(err);
      }
    }
  }

  private async submit(job: Job): Promise<void> {
    job.postAt = Date.now();
    const { promptId } = await this.ctx.client.queuePrompt(job.workflow, this.transport.clientId, this.ctx.signal);
    job.tracker = new PromptTracker(promptId, this.ctx.who, Date.now());
    this.byPrompt.set(promptId, job);
    for (const key of job.keys) this.ctx.emit({ type: "queued", backend: this.ctx.who, key, seed: job.seed });
    const early = this.early.get(promptId) ?? [];
    this.early.delete(promptId);
    for (const input of early) await this.handle(input);
  }

  private async handle(input: Input): Promise<void> {
    switch (input.type) {
      case "message":
        return this.onMessage(input.m, input.at);
      case "image":
        return this.onImage(input.f, input.at);
      case "wake":
        return;
      default:
        return this.onTick(input.type);
    }
  }

  private onMessage(m: ComfyMessage, at: number): void {
    if (m.type === "status") return;
    const pid = ("prompt_id" in m.data ? m.data.prompt_id : undefined) ?? this.current?.promptId;
    if (pid === undefined) return;
    if (m.type === "execution_start") this.current = { promptId: pid };
    if (m.type === "executing") this.current = m.data.node == null ? undefined : { promptId: pid, node: m.data.node };
    const job = this.byPrompt.get(pid);
    if (job === undefined) {
      // Events can beat the answer of POST /prompt; keep them until the id is known.
      if (this.early.size < EARLY_LIMIT) this.early.set(pid, [...(this.early.get(pid) ?? []), { type: "message", m, at }]);
      return;
    }
    this.act(job, job.tracker!.onMessage(m, at));
  }

  private onImage(f: ImageFrame, at: number): void {
    const pid = f.promptId ?? this.current?.promptId;
    const node = f.nodeId ?? this.current?.node;
    // Only frames sent while a SaveImageWebsocket node of ours runs are images; the rest are sampler previews.
    if (pid === undefined || !this.ctx.plan.outputs.some((o) => o.node === node && o.classType === "SaveImageWebsocket")) return;
    const job = this.byPrompt.get(pid);
    if (job === undefined) {
      if (this.early.size < EARLY_LIMIT) this.early.set(pid, [...(this.early.get(pid) ?? []), { type: "image", f, at }]);
      return;
    }
    job.tracker!.onImage(f.image, at);
  }

  private act(job: Job, a: TrackerAction): void {
    if (a.kind === "progress") {
      const e: BackendEvent = { type: "progress", backend: this.ctx.who, step: a.step, steps: a.steps };
      if (job.keys.length === 1) e.key = job.keys[0]!;
      this.ctx.emit(e);
    } else if (a.kind === "collect") this.collect(job, a.entry);
    else if (a.kind === "failed") this.failJob(job, a.error);
  }

  /**
   * A late tick (the process was held up) judges nothing: what the server sent meanwhile may still sit
   * unread in the socket, so the stall checks wait for the next tick.
   */
  private onTick(kind: "tick" | "late-tick" | "reconnected" | "lost"): void {
    const now = Date.now();
    if (kind !== "late-tick" && this.checkStall(now)) return;
    const silent = !this.transport.open || now - this.transport.lastMessageAt > this.ctx.limits.watchdogMs;
    if ((kind === "reconnected" || kind === "lost" || silent) && !this.polling) {
      // Detached, so a server that is slow to answer does not hold up the stall check.
      this.polling = true;
      this.lastAskedAt = now;
      void this.poll().finally(() => (this.polling = false));
    }
  }

  /** BACKEND_STALLED when nothing came from the server, or no progress from our running prompt, for stallTimeoutMs. */
  private checkStall(now: number): boolean {
    const limit = this.ctx.limits.stallTimeoutMs;
    const heard = Math.max(this.startedAt, this.ctx.client.http.lastAnswerAt, this.transport.lastMessageAt);
    // The server is silent only if we asked it something since it last spoke, and only while we could listen.
    this.deaf = this.deaf.filter(([, to]) => to > heard);
    const deafMs = this.deaf.reduce((t, [from, to]) => t + to - Math.max(from, heard), 0);
    if (this.lastAskedAt > heard && now - heard - deafMs > limit) {
      const what = `has answered nothing, on the socket or over HTTP, for ${seconds(now - heard - deafMs)}`;
      this.failAll(stalled(this.ctx.who, limit, deafMs > 0 ? `${what} (${seconds(deafMs)} more while pickrank itself was held up)` : what));
      return true;
    }
    // Without a socket progress is invisible: then a running prompt counts as alive while /queue lists it.
    const visible = this.transport.open;
    const t = this.jobs.map((j) => j.tracker).find((x) => x !== undefined && x.stalledFor(now, visible) > limit);
    if (t === undefined) return false;
    const s = seconds(t.stalledFor(now, visible));
    const what =
      t.phase === "running"
        ? `has been running our prompt ${t.promptId} for ${s} without a sign of progress`
        : `has kept our prompt ${t.promptId} waiting for ${s} in a queue where nothing runs`;
    this.failAll(stalled(this.ctx.who, limit, what, t.promptId));
    return true;
  }

  /** GET /queue, then /history for our prompts it no longer lists (history is written before a prompt leaves the queue). */
  private async poll(): Promise<void> {
    const live = this.jobs.filter((j) => j.tracker?.onServer);
    if (live.length === 0) return;
    const askedAt = Date.now();
    let q: { running: string[]; pending: string[] };
    try {
      q = await this.ctx.client.queue(this.ctx.signal);
    } catch (e) {
      return this.pollFailed(e);
    }
    const ours = (id: string): boolean => this.byPrompt.has(id);
    for (const job of live) {
      const t = job.tracker!;
      const a = t.onQueue({ ...q, askedAt }, ours, Date.now());
      if (a.kind !== "check-history") continue;
      let h: HistoryEntry | undefined;
      try {
        h = await this.ctx.client.history(t.promptId, this.ctx.signal);
      } catch (e) {
        return this.pollFailed(e);
      }
      this.act(job, h === undefined ? t.onMissing() : t.onHistory(h));
    }
    this.noteBusy(live);
  }

  /** A failed poll: a dead server or refused credentials end the run; a slow answer counts towards a stall. */
  private pollFailed(e: unknown): void {
    if (this.ctx.signal.aborted) return;
    const err = toPickrankError(e);
    if (err.code === "TIMEOUT" || (err.code === "BACKEND_REJECTED" && Number(err.details?.status) >= 500)) return;
    this.failAll(err);
  }

  private noteBusy(live: Job[]): void {
    const waiting = live.map((j) => j.tracker!).filter((t) => t.phase === "queued");
    const ahead = Math.max(0, ...waiting.map((t) => t.foreignAhead));
    if (ahead === 0) {
      if (waiting.length > 0 || live.length === 0) this.ctx.busy.warned = false;
      return;
    }
    if (this.ctx.busy.warned) return;
    this.ctx.busy.warned = true;
    const message =
      `${this.ctx.who} is busy with other clients' work: our prompts wait behind ${ahead} of their prompt(s); ` +
      `pickrank waits while the server answers (the ${seconds(this.ctx.limits.stallTimeoutMs)} stall limit ` +
      "applies to our running prompt only)";
    this.ctx.emit({ type: "warning", backend: this.ctx.who, message });
  }

  /** Reads a finished prompt's images (history + /view, or the socket's frames) while the loop goes on. */
  private collect(job: Job, entry: HistoryEntry | undefined): void {
    const t = job.tracker!;
    void (async () => {
      try {
        const h = entry ?? (await this.waitHistory(t.promptId));
        if (h === undefined) return t.reopen(); // not written yet after all: the poller looks again
        if (h.status?.status_str === "error") return this.failJob(job, historyError(this.ctx.who, t.promptId, h));
        this.deliver(job, await this.readImages(job, h));
      } catch (e) {
        if (this.ctx.signal.aborted) return;
        const err = toPickrankError(e);
        this.failJob(job, err);
        if (SERVER_LEVEL.has(err.code)) this.failAll(err);
      } finally {
        this.inbox.push({ type: "wake" });
      }
    })();
  }

  /** `executing null` comes after the history is written; on servers where it races, give it a moment. */
  private async waitHistory(pid: string): Promise<HistoryEntry | undefined> {
    for (let i = 0; i < 4; i++) {
      const h = await this.ctx.client.history(pid, this.ctx.signal);
      if (h !== undefined) return h;
      await sleep(50 * (i + 1), this.ctx.signal);
    }
    return undefined;
  }

  private async readImages(job: Job, h: HistoryEntry): Promise<Buffer[]> {
    const { plan, client, who, signal } = this.ctx;
    const t = job.tracker!;
    if (!plan.websocketOutput) {
      const refs = plan.outputs.flatMap((out) => h.outputs[out.node]?.images ?? []);
      return Promise.all(
        refs.slice(0, job.keys.length).map((r) => client.view({ filename: r.filename, subfolder: r.subfolder, type: r.type }, signal)),
      );
    }
    if (t.images.length > 0) return t.images;
    throw new PickrankError(
      "BACKEND_PROTOCOL",
      `${who} finished prompt ${t.promptId} but sent no SaveImageWebsocket frames on our socket ` +
        "(the socket may have dropped while it ran, or ComfyUI reused a cached result); use SaveImage to survive reconnects",
      {
        details: { backend: who, promptId: t.promptId },
      },
    );
  }

  private deliver(job: Job, images: Buffer[]): void {
    const { who, plan } = this.ctx;
    const t = job.tracker!;
    if (job.done) return;
    t.finish();
    job.done = true;
    const doneAt = Date.now();
    const startedAt = t.startedAt ?? t.queuedAt;
    job.keys.forEach((key, b) => {
      const image = images[b];
      const format = image ? sniffFormat(image) : undefined;
      if (image === undefined || format === undefined) {
        const outputs = plan.outputs.map((x) => `${x.classType} #${x.node}`).join(", ");
        const why =
          image === undefined
            ? `returned ${images.length} image(s) for prompt ${t.promptId} but ${job.keys.length} were expected from ${outputs}`
            : `sent image bytes for prompt ${t.promptId} that are not PNG, JPEG or WebP ` +
              `(first bytes ${image.subarray(0, 8).toString("hex")})`;
        return this.failOne(
          job,
          b,
          new PickrankError("BACKEND_PROTOCOL", `${who} ${why}`, { details: { backend: who, promptId: t.promptId } }),
        );
      }
      const c: Candidate = {
        ok: true,
        key,
        seed: job.seed,
        image,
        format,
        backend: who,
        timings: {
          queuedMs: Math.max(0, startedAt - t.queuedAt),
          renderMs: Math.max(0, doneAt - startedAt),
          totalMs: Date.now() - (job.postAt ?? t.queuedAt),
        },
        meta: { promptId: t.promptId, comfyPrompt: job.workflow, settings: job.settings },
      };
      if (job.batched) c.batchIndex = b;
      if (job.requested[b] !== job.seed) c.meta!.requestedSeed = job.requested[b]!;
      this.ctx.emit({ type: "candidate", backend: who, key, seed: job.seed });
      this.settle(c);
    });
  }

  private settle(g: Generated): void {
    this.settled++;
    this.results.push(g);
    if (this.settled >= this.total) {
      this.results.close();
      this.inbox.close();
    }
  }

  private failOne(job: Job, b: number, error: PickrankError): void {
    const key = job.keys[b]!;
    this.ctx.emit({ type: "candidate-failed", backend: this.ctx.who, key, seed: job.seed, error });
    this.settle({ ok: false, key, seed: job.seed, backend: this.ctx.who, error });
  }

  private failJob(job: Job, error: PickrankError): void {
    if (job.done) return;
    job.done = true;
    const t = job.tracker;
    // Failed by us while still on the server (a stall, a dead poll): take it off when the run stops.
    if (t?.onServer) this.abandoned.add(t.promptId);
    t?.fail();
    job.keys.forEach((_, b) => this.failOne(job, b, error));
  }

  private failAll(error: PickrankError): void {
    this.next = this.jobs.length;
    for (const j of this.jobs) this.failJob(j, error);
  }
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function stalled(who: string, limitMs: number, what: string, promptId?: string): PickrankError<"BACKEND_STALLED"> {
  return new PickrankError(
    "BACKEND_STALLED",
    `${who} ${what} (stall limit ${seconds(limitMs)}: --stall-timeout, or the backend's stallTimeoutMs, raises it for slow model loads)`,
    {
      details: { backend: who, stallMs: limitMs, ...(promptId === undefined ? {} : { promptId }) },
    },
  );
}

/** Deletes our queued prompts and interrupts ours if it runs (/interrupt with its prompt_id, so never another client's job). */
export async function cancelPrompts(client: ComfyClient, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const mine = new Set(ids);
  await client.deleteQueued(ids, AbortSignal.timeout(5000)).catch(() => undefined);
  const q = await client.queue(AbortSignal.timeout(5000)).catch(() => undefined);
  for (const id of q?.running ?? []) if (mine.has(id)) await client.interrupt(id, AbortSignal.timeout(5000)).catch(() => undefined);
}

import { PickrankError, invalidParameter, toPickrankError } from "@pickrank/contract";
import type { Backend, BackendEvent, GenerateRequest, Generated, HealthReport } from "@pickrank/contract";
import { Channel, beginRun, closeRuns, drainRun, isPositiveInt, runController, stopError } from "./util.ts";

/** One server of a pool: its backend and, optionally, how many candidates it works on at once. */
export interface PoolMember {
  backend: Backend;
  /** Candidates this server works on at once (overrides the pool's concurrency; capped by the backend's maxConcurrency). */
  concurrency?: number;
}

/**
 * Options of a pool of backends: candidates in flight per server (default 2), candidates per member
 * request (default 1), a check() of every server before a run (default true, 5000 ms each) and attempts
 * per candidate over all servers (default: the number of servers). Invalid values throw BAD_INPUT.
 */
export interface PoolOptions {
  /**
   * Candidates in flight per server (default 2: one rendering and one queued, so the GPU never waits
   * on us), capped per member by its backend's maxConcurrency (Automatic1111: 1).
   */
  concurrency?: number;
  /** Candidates per request to a member (default 1; larger lets a member batch). */
  chunkSize?: number;
  /** Ask every server check() before a run and use only those that answer (default true). */
  checkFirst?: boolean;
  /** Time limit of each check() (ms; default 5000). */
  checkTimeoutMs?: number;
  /** Attempts per candidate over all servers (default: the number of servers). */
  maxAttempts?: number;
}

/**
 * One pool member's counters over its runs: candidates completed and failed, failures handed to another
 * server, busy time (ms), throughput (images per minute) and mean render time (ms).
 */
export interface PoolServerStats {
  backend: string;
  kind: string;
  /** Up at the end of the last run (or its check). */
  up: boolean;
  completed: number;
  failed: number;
  /** Candidates this server failed that were handed to another one. */
  retriedElsewhere: number;
  /** Wall time with at least one candidate in flight (ms). */
  busyMs: number;
  /** completed / busy minutes. */
  imagesPerMinute: number;
  meanRenderMs: number;
  lastError?: string;
}

interface Item {
  key: string;
  seed: number;
  tried: Set<number>;
  attempts: number;
  lastError?: PickrankError;
  lastBackend?: string;
}

interface MemberState {
  backend: Backend;
  concurrency: number;
  stats: PoolServerStats;
  renderSum: number;
  /** What the pool last told the caller about this member (a warning goes out when it turns "down"). */
  reported: "up" | "down";
}

/** Failures that say the server itself is gone or stuck, not just this candidate: the member is off for the run. */
const SERVER_LEVEL = new Set(["BACKEND_UNREACHABLE", "BACKEND_AUTH", "BACKEND_STALLED", "TIMEOUT", "CLOSED"]);

function memberOf(m: Backend | PoolMember, i: number, concurrency: number): MemberState {
  const pm: PoolMember =
    "backend" in m && typeof (m as PoolMember).backend?.generate === "function" ? (m as PoolMember) : { backend: m as Backend };
  if (typeof pm.backend?.generate !== "function") throw invalidParameter(`members[${i}]`, "a Backend or { backend, concurrency }", m);
  const c = pm.concurrency ?? concurrency;
  if (!isPositiveInt(c)) throw invalidParameter(`members[${i}].concurrency`, "positive integer", c);
  const cap = pm.backend.maxConcurrency;
  return {
    backend: pm.backend,
    concurrency: isPositiveInt(cap) ? Math.min(c, cap) : c,
    renderSum: 0,
    reported: "up",
    stats: {
      backend: pm.backend.id,
      kind: pm.backend.kind,
      up: true,
      completed: 0,
      failed: 0,
      retriedElsewhere: 0,
      busyMs: 0,
      imagesPerMinute: 0,
      meanRenderMs: 0,
    },
  };
}

/**
 * Several backends behind one (kind "pool"): candidates go to servers that are up, at most
 * `concurrency` per server, and a candidate whose server fails is handed to another server, so none
 * is lost while any can work. A member found down at the start of a run, or taken off during one,
 * is announced once with a `warning` event `{ type: "warning", backend: <member id>, code: <error
 * code>, message }`. maxSeed is the smallest of the members'. Constructor throws BAD_INPUT.
 */
export class PoolBackend implements Backend {
  readonly kind = "pool";
  readonly id: string;
  /** Set by close(). */
  closed = false;
  private readonly members: MemberState[];
  private readonly chunkSize: number;
  private readonly checkFirst: boolean;
  private readonly checkTimeoutMs: number;
  private readonly maxAttempts: number;
  private readonly live = new Set<AbortController>();

  constructor(members: (Backend | PoolMember)[], opts: PoolOptions = {}) {
    if (!Array.isArray(members) || members.length === 0) throw invalidParameter("members", "a non-empty array of backends", members);
    const concurrency = opts.concurrency ?? 2;
    if (!isPositiveInt(concurrency)) throw invalidParameter("concurrency", "positive integer", concurrency);
    this.members = members.map((m, i) => memberOf(m, i, concurrency));
    this.chunkSize = opts.chunkSize ?? 1;
    if (!isPositiveInt(this.chunkSize)) throw invalidParameter("chunkSize", "positive integer", this.chunkSize);
    this.checkFirst = opts.checkFirst ?? true;
    this.checkTimeoutMs = opts.checkTimeoutMs ?? 5000;
    this.maxAttempts = opts.maxAttempts ?? this.members.length;
    this.id = `pool[${this.members.map((m) => m.backend.id).join(",")}]`;
  }

  /** Per-server throughput, summed over every run of this pool. */
  stats(): PoolServerStats[] {
    return this.members.map((m) => ({ ...m.stats }));
  }

  /** Each member's effective concurrency (after its backend's maxConcurrency). */
  concurrency(): number[] {
    return this.members.map((m) => m.concurrency);
  }

  /** Every member's check() (each under checkTimeoutMs); up when at least one member is. Never throws. */
  async check(signal?: AbortSignal): Promise<HealthReport> {
    const members = await Promise.all(this.members.map((m) => this.checkMember(m, signal)));
    return { ok: members.some((r) => r.ok), backend: this.id, kind: this.kind, members };
  }

  /** The members' fingerprints, in order (a resumed run must use the same servers' settings). */
  fingerprint(): Record<string, unknown> {
    return { kind: this.kind, members: this.members.map((m) => m.backend.fingerprint()) };
  }

  /** The smallest maxSeed of the members: every seed must be valid on whichever server renders it. */
  get maxSeed(): number {
    return Math.min(...this.members.map((m) => m.backend.maxSeed));
  }

  /** Stops every run (they throw CLOSED) and closes every member; later generate() calls throw CLOSED. */
  async close(): Promise<void> {
    this.closed = true;
    closeRuns(this.id, this.live);
    await Promise.all(this.members.map((m) => m.backend.close()));
  }

  private async checkMember(m: MemberState, signal?: AbortSignal): Promise<HealthReport> {
    const timeout = AbortSignal.timeout(this.checkTimeoutMs);
    try {
      return await m.backend.check(signal ? AbortSignal.any([signal, timeout]) : timeout);
    } catch (e) {
      return { ok: false, backend: m.backend.id, kind: m.backend.kind, error: toPickrankError(e, "BACKEND_UNREACHABLE").toJSON() };
    }
  }

  /**
   * Yields candidates from whichever members render them. Throws BAD_INPUT (request; params.extra
   * with members of different kinds, since its shape is each kind's own), CLOSED, ABORTED, and
   * BACKEND_UNREACHABLE when no member is up.
   */
  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this, req);
    const kinds = new Set(this.members.map((m) => m.backend.kind));
    if (req.params?.extra !== undefined && kinds.size > 1) {
      throw invalidParameter(
        "extra",
        `no params.extra for a pool of different kinds (${[...kinds].join(", ")}): its shape is each kind's own`,
        req.params.extra,
      );
    }
    const up = await this.upMembers(req.signal, emit);
    const ctl = runController(req.signal, this.live);
    const run = new PoolRun(
      this.id,
      this.members,
      up,
      { chunkSize: this.chunkSize, maxAttempts: this.maxAttempts },
      req,
      emit,
      ctl.ac.signal,
    );
    run.start(seeds, keys);
    // Every member cancels its server-side work before we return.
    yield* drainRun(
      this.id,
      ctl,
      () => run.out,
      () => run.finish(),
    );
  }

  /** The members to use: those whose check() passes (all with checkFirst false); warns once about each that is down. */
  private async upMembers(signal: AbortSignal | undefined, emit: (e: BackendEvent) => void): Promise<Set<number>> {
    const up = new Set<number>();
    if (!this.checkFirst) {
      this.members.forEach((_, i) => up.add(i));
      return up;
    }
    const checks = await Promise.all(this.members.map((m) => this.checkMember(m, signal)));
    checks.forEach((c, i) => {
      const m = this.members[i]!;
      m.stats.up = c.ok;
      if (c.ok) {
        up.add(i);
        m.reported = "up";
      } else m.stats.lastError = c.error?.message ?? "check failed";
    });
    if (up.size === 0) {
      throw new PickrankError(
        "BACKEND_UNREACHABLE",
        `No server of ${this.id} is up: ${checks.map((c) => `${c.backend} (${c.error?.message ?? "check failed"})`).join("; ")}`,
        {
          details: { backend: this.id, members: checks },
        },
      );
    }
    checks.forEach((c, i) => {
      const m = this.members[i]!;
      if (c.ok || m.reported === "down") return;
      m.reported = "down";
      const why = c.error?.message ?? "check failed";
      const message = `${c.backend} is down and left out of this run: ${why}; ${up.size} of ${this.members.length} servers render`;
      emit(
        c.error?.code === undefined
          ? { type: "warning", backend: c.backend, message }
          : { type: "warning", backend: c.backend, message, code: c.error.code },
      );
    });
    return up;
  }
}

/** One generate() call of a pool: hands out candidates, retries a failed one elsewhere, keeps per-member stats. */
class PoolRun {
  readonly out = new Channel<Generated>();
  private readonly pending: Item[] = [];
  private readonly inFlight: number[];
  private readonly busySince: (number | undefined)[];
  private readonly tasks = new Set<Promise<void>>();
  private resolved = 0;

  constructor(
    private readonly id: string,
    private readonly members: MemberState[],
    private readonly up: Set<number>,
    private readonly o: { chunkSize: number; maxAttempts: number },
    private readonly req: GenerateRequest,
    private readonly emit: (e: BackendEvent) => void,
    private readonly signal: AbortSignal,
  ) {
    this.inFlight = members.map(() => 0);
    this.busySince = members.map(() => undefined);
    signal.addEventListener("abort", () => this.out.close(stopError(id, signal.reason)), { once: true });
  }

  start(seeds: number[], keys: string[]): void {
    seeds.forEach((seed, i) => this.pending.push({ key: keys[i]!, seed, tried: new Set(), attempts: 0 }));
    this.schedule();
  }

  /** Waits for every member's run to end (each cancels its server-side work), then books the busy time. */
  async finish(): Promise<void> {
    await Promise.allSettled([...this.tasks]);
    this.members.forEach((m, i) => {
      if (this.busySince[i] !== undefined) m.stats.busyMs += Date.now() - this.busySince[i]!;
    });
  }

  private settle(g: Generated): void {
    this.resolved++;
    this.out.push(g);
    if (this.resolved >= this.req.n) this.out.close();
  }

  private giveUp(item: Item): void {
    const error =
      item.lastError ??
      new PickrankError("BACKEND_UNREACHABLE", `No server of ${this.id} is left to render candidate ${item.key} (seed ${item.seed})`, {
        details: { backend: this.id },
      });
    const backend = item.lastBackend ?? this.id;
    this.emit({ type: "candidate-failed", backend, key: item.key, seed: item.seed, error });
    this.settle({ ok: false, key: item.key, seed: item.seed, backend, error });
  }

  private fail(mi: number, item: Item, err: PickrankError, serverGone: boolean): void {
    if (this.signal.aborted) return;
    const m = this.members[mi]!;
    m.stats.failed++;
    m.stats.lastError = err.message;
    item.tried.add(mi);
    item.lastError = err;
    item.lastBackend = m.backend.id;
    if (serverGone && this.up.delete(mi)) this.takeOff(m, err);
    const elsewhere = [...this.up].some((u) => !item.tried.has(u));
    if (elsewhere && item.attempts < this.o.maxAttempts) {
      m.stats.retriedElsewhere++;
      this.emit({ type: "retry", backend: m.backend.id, key: item.key, seed: item.seed, reason: err.message });
      this.pending.push(item);
    } else this.giveUp(item);
  }

  private takeOff(m: MemberState, err: PickrankError): void {
    m.stats.up = false;
    m.reported = "down";
    const rest = this.up.size === 0 ? "no server is left for its candidates" : `its candidates go to the other ${this.up.size} server(s)`;
    this.emit({
      type: "warning",
      backend: m.backend.id,
      code: err.code,
      message: `${m.backend.id} was taken off this run: ${err.message}; ${rest}`,
    });
  }

  private launch(mi: number, chunk: Item[]): void {
    if (this.inFlight[mi]! === 0) this.busySince[mi] = Date.now();
    this.inFlight[mi]!++;
    for (const it of chunk) it.attempts++;
    const task = this.render(mi, chunk).finally(() => this.landed(mi));
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  private async render(mi: number, chunk: Item[]): Promise<void> {
    const m = this.members[mi]!;
    const done = new Set<string>();
    const byKey = new Map(chunk.map((it) => [it.key, it]));
    const sub: GenerateRequest = {
      prompt: this.req.prompt,
      n: chunk.length,
      seeds: chunk.map((it) => it.seed),
      keys: chunk.map((it) => it.key),
      signal: this.signal,
      // Failures and retries are the pool's to report: a failed candidate may yet succeed elsewhere.
      onEvent: (e) => (e.type !== "candidate-failed" && e.type !== "retry" ? this.emit(e) : undefined),
    };
    if (this.req.negativePrompt !== undefined) sub.negativePrompt = this.req.negativePrompt;
    if (this.req.params !== undefined) sub.params = this.req.params;
    try {
      for await (const g of m.backend.generate(sub)) {
        const it = byKey.get(g.key);
        if (it === undefined || done.has(g.key)) continue;
        done.add(g.key);
        if (!g.ok) this.fail(mi, it, g.error, SERVER_LEVEL.has(g.error.code));
        else {
          m.stats.completed++;
          m.renderSum += g.timings.renderMs;
          this.settle(g);
        }
      }
      const missing = chunk.filter((it) => !done.has(it.key));
      const err = new PickrankError(
        "BACKEND_PROTOCOL",
        `${m.backend.id} ended its run without a result for ${missing.length} candidate(s)`,
        { details: { backend: m.backend.id } },
      );
      for (const it of missing) this.fail(mi, it, err, true);
    } catch (e) {
      // A member that throws can do nothing with this request: off the list for this run.
      const err = toPickrankError(e, "BACKEND_UNREACHABLE");
      for (const it of chunk) if (!done.has(it.key)) this.fail(mi, it, err, true);
    }
  }

  private landed(mi: number): void {
    const m = this.members[mi]!;
    this.inFlight[mi]!--;
    if (this.inFlight[mi] === 0 && this.busySince[mi] !== undefined) {
      m.stats.busyMs += Date.now() - this.busySince[mi]!;
      this.busySince[mi] = undefined;
    }
    m.stats.meanRenderMs = m.stats.completed > 0 ? m.renderSum / m.stats.completed : 0;
    m.stats.imagesPerMinute = m.stats.busyMs > 0 ? (m.stats.completed * 60_000) / m.stats.busyMs : 0;
    if (!this.signal.aborted) this.schedule();
  }

  /** Hands out work: each server that is up takes what it has not tried yet, up to its concurrency. */
  private schedule(): void {
    for (let progress = true; progress; ) {
      progress = false;
      for (const mi of this.up) {
        if (this.inFlight[mi]! >= this.members[mi]!.concurrency) continue;
        const chunk: Item[] = [];
        for (let k = 0; k < this.pending.length && chunk.length < this.o.chunkSize; ) {
          if (!this.pending[k]!.tried.has(mi)) chunk.push(...this.pending.splice(k, 1));
          else k++;
        }
        if (chunk.length > 0) {
          this.launch(mi, chunk);
          progress = true;
        }
      }
    }
    // What no server that is up can take any more has failed for good.
    for (let k = this.pending.length - 1; k >= 0; k--) {
      const it = this.pending[k]!;
      if (![...this.up].some((u) => !it.tried.has(u))) {
        this.pending.splice(k, 1);
        this.giveUp(it);
      }
    }
  }
}

import { PickrankError, invalidParameter, toPickrankError } from "@pickrank/contract";
import type { Backend, GenerateRequest, Generated, HealthReport } from "@pickrank/contract";
import { Channel, abortError, beginRun, isPositiveInt } from "./util.ts";

export interface PoolMember {
  backend: Backend;
  /** Candidates this server works on at once (overrides the pool's concurrency). */
  concurrency?: number;
}

export interface PoolOptions {
  /** Candidates in flight per server (default 2: one rendering and one queued, so the GPU never waits on us). */
  concurrency?: number;
  /** Candidates per request to a member (default 1; larger lets A1111 batch). */
  chunkSize?: number;
  /** Ask every server check() before a run and use only those that answer (default true). */
  checkFirst?: boolean;
  /** Time limit of each check() (ms; default 5000). */
  checkTimeoutMs?: number;
  /** Attempts per candidate over all servers (default: the number of servers). */
  maxAttempts?: number;
}

export interface PoolServerStats {
  backend: string;
  kind: string;
  /** Up at the end of the last run (or its check). */
  up: boolean;
  completed: number;
  failed: number;
  /** Candidates this server failed that were handed to another one. */
  retriedElsewhere: number;
  /** Wall time with at least one candidate in flight. */
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
}

/** Failures that say the server itself is gone or broken, not just this candidate. */
const SERVER_LEVEL = new Set(["BACKEND_UNREACHABLE", "TIMEOUT", "BACKEND_PROTOCOL"]);

/**
 * Several backends behind one: candidates go to servers that are up, at most `concurrency` per server,
 * and a candidate whose server fails is handed to another server, so none is lost while any can work.
 */
export class PoolBackend implements Backend {
  readonly kind = "pool";
  readonly id: string;
  private readonly members: MemberState[];
  private readonly chunkSize: number;
  private readonly checkFirst: boolean;
  private readonly checkTimeoutMs: number;
  private readonly maxAttempts: number;

  constructor(members: (Backend | PoolMember)[], opts: PoolOptions = {}) {
    if (!Array.isArray(members) || members.length === 0) throw invalidParameter("members", "a non-empty array of backends", members);
    const concurrency = opts.concurrency ?? 2;
    if (!isPositiveInt(concurrency)) throw invalidParameter("concurrency", "positive integer", concurrency);
    this.members = members.map((m, i) => {
      const pm: PoolMember = "backend" in m && typeof (m as PoolMember).backend?.generate === "function" ? (m as PoolMember) : { backend: m as Backend };
      if (typeof pm.backend?.generate !== "function") throw invalidParameter(`members[${i}]`, "a Backend or { backend, concurrency }", m);
      const c = pm.concurrency ?? concurrency;
      if (!isPositiveInt(c)) throw invalidParameter(`members[${i}].concurrency`, "positive integer", c);
      return {
        backend: pm.backend,
        concurrency: c,
        renderSum: 0,
        stats: { backend: pm.backend.id, kind: pm.backend.kind, up: true, completed: 0, failed: 0, retriedElsewhere: 0, busyMs: 0, imagesPerMinute: 0, meanRenderMs: 0 },
      };
    });
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

  /** Every member's check() (each under checkTimeoutMs); up when at least one member is. */
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

  async close(): Promise<void> {
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

  generate(req: GenerateRequest): AsyncIterable<Generated> {
    return this.run(req);
  }

  private async *run(req: GenerateRequest): AsyncGenerator<Generated> {
    const { seeds, keys, emit } = beginRun(this.id, req);
    const members = this.members;
    const up = new Set<number>();
    if (this.checkFirst) {
      const checks = await Promise.all(members.map((m) => this.checkMember(m, req.signal)));
      checks.forEach((c, i) => {
        members[i]!.stats.up = c.ok;
        if (c.ok) up.add(i);
        else members[i]!.stats.lastError = c.error?.message ?? "check failed";
      });
      if (up.size === 0) {
        throw new PickrankError("BACKEND_UNREACHABLE", `No server of ${this.id} is up: ${checks.map((c) => `${c.backend} (${c.error?.message ?? "check failed"})`).join("; ")}`, {
          details: { backend: this.id, members: checks },
        });
      }
    } else members.forEach((_, i) => up.add(i));

    const ac = new AbortController();
    const onUserAbort = (): void => ac.abort(req.signal?.reason);
    req.signal?.addEventListener("abort", onUserAbort, { once: true });
    const channel = new Channel<Generated>();
    ac.signal.addEventListener("abort", () => channel.close(abortError(this.id, ac.signal.reason)), { once: true });
    const pending: Item[] = seeds.map((seed, i) => ({ key: keys[i]!, seed, tried: new Set(), attempts: 0 }));
    const inFlight = members.map(() => 0);
    const busySince: (number | undefined)[] = members.map(() => undefined);
    const tasks = new Set<Promise<void>>();
    let resolved = 0;

    const settle = (g: Generated): void => {
      resolved++;
      channel.push(g);
      if (resolved >= req.n) channel.close();
    };
    const giveUp = (item: Item): void => {
      const error = item.lastError ?? new PickrankError("BACKEND_UNREACHABLE", `No server of ${this.id} is left to render candidate ${item.key} (seed ${item.seed})`, { details: { backend: this.id } });
      const backend = item.lastBackend ?? this.id;
      emit({ type: "candidate-failed", backend, key: item.key, seed: item.seed, error });
      settle({ ok: false, key: item.key, seed: item.seed, backend, error });
    };
    const fail = (mi: number, item: Item, err: PickrankError, serverGone: boolean): void => {
      if (ac.signal.aborted) return;
      const m = members[mi]!;
      m.stats.failed++;
      m.stats.lastError = err.message;
      item.tried.add(mi);
      item.lastError = err;
      item.lastBackend = m.backend.id;
      if (serverGone && up.delete(mi)) m.stats.up = false;
      const elsewhere = [...up].some((u) => !item.tried.has(u));
      if (elsewhere && item.attempts < this.maxAttempts) {
        m.stats.retriedElsewhere++;
        emit({ type: "retry", backend: m.backend.id, key: item.key, seed: item.seed, reason: err.message });
        pending.push(item);
      } else giveUp(item);
    };

    const launch = (mi: number, chunk: Item[]): void => {
      const m = members[mi]!;
      if (inFlight[mi]! === 0) busySince[mi] = Date.now();
      inFlight[mi]!++;
      for (const it of chunk) it.attempts++;
      const done = new Set<string>();
      const byKey = new Map(chunk.map((it) => [it.key, it]));
      const task = (async () => {
        const sub: GenerateRequest = {
          prompt: req.prompt,
          n: chunk.length,
          seeds: chunk.map((it) => it.seed),
          keys: chunk.map((it) => it.key),
          signal: ac.signal,
          onEvent: (e) => {
            // Failures and retries are the pool's to report: a failed candidate may yet succeed elsewhere.
            if (e.type !== "candidate-failed" && e.type !== "retry") emit(e);
          },
        };
        if (req.negativePrompt !== undefined) sub.negativePrompt = req.negativePrompt;
        if (req.params !== undefined) sub.params = req.params;
        try {
          for await (const g of m.backend.generate(sub)) {
            const it = byKey.get(g.key);
            if (it === undefined || done.has(g.key)) continue;
            done.add(g.key);
            if (g.ok) {
              m.stats.completed++;
              m.renderSum += g.timings.renderMs;
              settle(g);
            } else fail(mi, it, g.error, SERVER_LEVEL.has(g.error.code));
          }
          const missing = chunk.filter((it) => !done.has(it.key));
          const err = new PickrankError("BACKEND_PROTOCOL", `${m.backend.id} ended its run without a result for ${missing.length} candidate(s)`, { details: { backend: m.backend.id } });
          for (const it of missing) fail(mi, it, err, true);
        } catch (e) {
          // A member that throws can do nothing with this request: off the list for this run.
          const err = toPickrankError(e, "BACKEND_UNREACHABLE");
          for (const it of chunk) if (!done.has(it.key)) fail(mi, it, err, true);
        } finally {
          inFlight[mi]!--;
          if (inFlight[mi] === 0 && busySince[mi] !== undefined) {
            m.stats.busyMs += Date.now() - busySince[mi]!;
            busySince[mi] = undefined;
          }
          m.stats.meanRenderMs = m.stats.completed > 0 ? m.renderSum / m.stats.completed : 0;
          m.stats.imagesPerMinute = m.stats.busyMs > 0 ? (m.stats.completed * 60_000) / m.stats.busyMs : 0;
          if (!ac.signal.aborted) schedule();
        }
      })();
      tasks.add(task);
      void task.finally(() => tasks.delete(task));
    };

    const schedule = (): void => {
      // Hand out work: each server that is up takes what it has not tried yet, up to its concurrency.
      for (let progress = true; progress; ) {
        progress = false;
        for (const mi of up) {
          if (inFlight[mi]! >= members[mi]!.concurrency) continue;
          const chunk: Item[] = [];
          for (let k = 0; k < pending.length && chunk.length < this.chunkSize; ) {
            if (!pending[k]!.tried.has(mi)) chunk.push(...pending.splice(k, 1));
            else k++;
          }
          if (chunk.length > 0) {
            launch(mi, chunk);
            progress = true;
          }
        }
      }
      // What no server that is up can take any more has failed for good.
      for (let k = pending.length - 1; k >= 0; k--) {
        const it = pending[k]!;
        if (![...up].some((u) => !it.tried.has(u))) {
          pending.splice(k, 1);
          giveUp(it);
        }
      }
    };

    try {
      schedule();
      for (;;) {
        const r = await channel.next();
        if (r.done) break;
        yield r.value;
      }
    } catch (e) {
      if (ac.signal.aborted) throw abortError(this.id, ac.signal.reason);
      throw e;
    } finally {
      req.signal?.removeEventListener("abort", onUserAbort);
      if (!ac.signal.aborted) ac.abort();
      // Let every member cancel its server-side work before we return.
      await Promise.allSettled([...tasks]);
      members.forEach((m, i) => {
        if (busySince[i] !== undefined) m.stats.busyMs += Date.now() - busySince[i]!;
      });
    }
  }
}

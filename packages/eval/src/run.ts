/**
 * `eval run`'s engine: every (configuration, prompt) is one job that renders the prompt's missing
 * seeds on the configuration's backend through the selector's producer (`produce`: journal replay,
 * then the backend) and embeds them with the selector's consumer (`consumeAndEmbed`) as they arrive.
 * The journal is the store: a candidate's image is written atomically, then its row inserted, before
 * it is handed to scoring; its scores (selector, and judge with `judge`) are written the moment they
 * exist. A resumed run skips what is scored and replays what is rendered but not yet scored, so
 * nothing is rendered twice. Configurations run side by side, each with its own job concurrency.
 */
import { setMaxListeners } from "node:events";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  abortedError,
  Channel,
  PickrankError,
  toPickrankError,
  writeFileAtomic,
  type Backend,
  type GenerationParams,
} from "@pickrank/contract";
import {
  consumeAndEmbed,
  produce,
  scoringPrompt,
  type Arrival,
  type CandidateJournal,
  type Embedded,
  type JournalRecord,
  type SelectorScorer,
} from "@pickrank/selector";
import type { EvalPrompt } from "./records.ts";
import { candidateKey, type CandidateRecord, type EvalStore } from "./store.ts";

/** A model that scores (prompt, image): the selector's scorer, or a judge (any converted CLIP model). */
export type EvalScorer = Pick<SelectorScorer, "embedText" | "embedImages" | "scoreEmbeddings">;

/** One named configuration as the engine runs it: its backend (built by the caller) and settings. */
export interface EvalConfig {
  /** The name rows carry ([A-Za-z0-9][A-Za-z0-9_.-]*). */
  name: string;
  backend: Backend;
  params: GenerationParams;
  negativePrompt?: string;
  /** (configuration, prompt) jobs rendering at once on this configuration (≥ 1). */
  concurrency: number;
}

/** What the engine reports while it works (for progress bars and logs). */
export type EvalEvent =
  | { type: "start"; total: number; done: number }
  | { type: "rendered"; config: string; promptId: string; seedIndex: number; backend: string; reused: boolean }
  | { type: "scored"; config: string; promptId: string; seedIndex: number }
  | { type: "failed"; config: string; promptId: string; seedIndex: number; error: PickrankError }
  | { type: "warning"; config: string; message: string; backend?: string };

/** A candidate the run could not render or score, with why. */
export interface EvalFailure {
  config: string;
  promptId: string;
  seedIndex: number;
  seed: number;
  error: PickrankError;
}

/** Options of evalRun: the store and folder, the prompts, N, the seeds' base, configurations and models. */
export interface EvalRunOptions {
  store: EvalStore;
  /** The evaluation folder: images go to `images/<config>/<promptId>/<seedIndex>.<ext>` under it. */
  outDir: string;
  prompts: readonly EvalPrompt[];
  /** Seeds per prompt (N ≥ 1). */
  n: number;
  /** Base of the seeds (seedsFor). */
  seedBase: number;
  configs: readonly EvalConfig[];
  scorer: SelectorScorer;
  judge?: EvalScorer;
  /** Most images per scorer call. */
  batchSize: number;
  signal?: AbortSignal;
  onEvent?: (e: EvalEvent) => void;
}

/** What evalRun did: candidates asked, scored in total (earlier runs included), rendered now, replayed, failures. */
export interface EvalRunReport {
  asked: number;
  scored: number;
  rendered: number;
  reused: number;
  failed: EvalFailure[];
}

/** Seeds stay below this (every backend's range holds it, and A1111's batches add at most N). */
export const SEED_SPACE = 2 ** 31;

/**
 * The N seeds of a prompt: `s0, s0 + 1, …, s0 + n − 1` with `s0 = (base + fnv1a32(promptId)) mod 2^31`.
 * The same for every configuration (win rates at equal seeds), distinct between prompts, stable when the
 * set is filtered or limited, and consecutive (A1111 batches runs of consecutive seeds).
 */
export function seedsFor(promptId: string, n: number, base: number): number[] {
  let h = 0x811c9dc5;
  for (const ch of Buffer.from(promptId, "utf8")) {
    h ^= ch;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const s0 = (base + h) % SEED_SPACE;
  return Array.from({ length: n }, (_, i) => s0 + i);
}

/** `images/<config>/<promptId>/<seedIndex>.<ext>`, relative to the evaluation folder (POSIX separators). */
export function candidateImagePath(config: string, promptId: string, seedIndex: number, format: string): string {
  return ["images", config, promptId, `${seedIndex}.${format === "jpeg" ? "jpg" : format}`].join("/");
}

/**
 * Runs every (configuration, prompt) job to the end, or until the signal fires.
 * @throws ABORTED when the signal fires (what was stored stays); the store's FILESYSTEM errors.
 *   Render and scoring failures do not throw: they are in the report's `failed`.
 */
export async function evalRun(o: EvalRunOptions): Promise<EvalRunReport> {
  const judge = o.judge !== undefined;
  const done = await o.store.doneKeys({ withJudge: judge });
  const stored = new Map((await o.store.candidates()).map((c) => [candidateKey(c), c] as const));
  const report: EvalRunReport = { asked: o.prompts.length * o.n * o.configs.length, scored: 0, rendered: 0, reused: 0, failed: [] };
  const inThisRun = (k: string): boolean =>
    o.prompts.some((p) => k.split("\t")[1] === p.id) && o.configs.some((c) => k.startsWith(`${c.name}\t`));
  report.scored = [...done].filter((k) => inThisRun(k) && Number(k.split("\t")[2]) < o.n).length;
  o.onEvent?.({ type: "start", total: report.asked, done: report.scored });
  const texts = new TextCache(o.scorer, o.judge);
  // Each job in flight listens on the run's signal (one listener, removed when the job ends): with the queue's 16
  // jobs per configuration that passes Node's default limit of 10, and Node warned of a leak that is none. So the
  // jobs listen on this run's own signal, whose limit is the number of jobs that can be in flight.
  const run = new AbortController();
  setMaxListeners(10 + o.configs.reduce((t, c) => t + Math.max(1, c.concurrency), 0), run.signal);
  const onAbort = (): void => run.abort(o.signal?.reason);
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener("abort", onAbort, { once: true });
  const jobs: EvalRunOptions = { ...o, signal: run.signal };
  try {
    await Promise.all(
      o.configs.map(async (config) => {
        const queue = [...o.prompts];
        const worker = async (): Promise<void> => {
          for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
            if (run.signal.aborted) throw abortedError("eval run", run.signal.reason);
            await runJob(jobs, { config, prompt: p, done, stored, texts, report });
          }
        };
        await Promise.all(Array.from({ length: Math.max(1, config.concurrency) }, worker));
      }),
    );
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
  return report;
}

/** Text embeddings of the scoring prompts, per model, computed once. */
class TextCache {
  readonly #sel = new Map<string, Promise<Float32Array>>();
  readonly #judge = new Map<string, Promise<Float32Array>>();
  constructor(
    private readonly scorer: EvalScorer,
    private readonly judge: EvalScorer | undefined,
  ) {}
  selector(text: string): Promise<Float32Array> {
    return cached(this.#sel, text, () => this.scorer.embedText(text));
  }
  judgeText(text: string): Promise<Float32Array> | undefined {
    const j = this.judge;
    return j ? cached(this.#judge, text, () => j.embedText(text)) : undefined;
  }
}

function cached<T>(m: Map<string, Promise<T>>, k: string, make: () => Promise<T>): Promise<T> {
  let v = m.get(k);
  if (!v) m.set(k, (v = make()));
  return v;
}

interface Job {
  config: EvalConfig;
  prompt: EvalPrompt;
  done: Set<string>;
  stored: Map<string, CandidateRecord>;
  texts: TextCache;
  report: EvalRunReport;
}

/** The store as the producer's journal: rendered-but-unscored candidates replay, new ones are written before they are handed on. */
function storeJournal(o: EvalRunOptions, job: Job): CandidateJournal {
  const key = (index: number) => candidateKey({ config: job.config.name, promptId: job.prompt.id, seedIndex: index });
  return {
    stored: (_pi, _phase, index) => {
      const c = job.stored.get(key(index));
      if (!c || c.seed === null) return undefined;
      const r: JournalRecord = {
        index,
        seed: c.seed,
        backend: c.backend ?? "",
        format: c.format as JournalRecord["format"],
        timings: { queuedMs: 0, renderMs: c.renderMs ?? 0, totalMs: c.renderMs ?? 0 },
        file: c.image,
      };
      return r;
    },
    load: async (r) => {
      const file = path.join(o.outDir, r.file);
      try {
        return await readFile(file);
      } catch (e) {
        throw toPickrankError(e, "FILESYSTEM", `Could not read the stored candidate ${file}`);
      }
    },
    save: async (_pi, _phase, c) => {
      const rel = candidateImagePath(job.config.name, job.prompt.id, c.index, c.format);
      await writeFileAtomic(path.join(o.outDir, rel), c.image, "--out");
      await o.store.insertCandidate({
        config: job.config.name,
        promptId: job.prompt.id,
        seedIndex: c.index,
        seed: c.seed,
        image: rel,
        format: c.format,
        backend: c.backend,
        renderMs: c.timings.renderMs,
      });
    },
  };
}

/** One (configuration, prompt): render the missing seeds, score each as it arrives, store its scores. */
async function runJob(o: EvalRunOptions, job: Job): Promise<void> {
  const { config, prompt } = job;
  const seeds = seedsFor(prompt.id, o.n, o.seedBase);
  const indices = seeds
    .map((_, i) => i)
    .filter((i) => !job.done.has(candidateKey({ config: config.name, promptId: prompt.id, seedIndex: i })));
  if (indices.length === 0) return;
  const text = scoringPrompt(prompt.text);
  const [textEmb, judgeEmb] = await Promise.all([job.texts.selector(text), job.texts.judgeText(text)]);
  const channel = new Channel<Arrival>();
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(o.signal?.reason);
  if (o.signal?.aborted) onAbort();
  o.signal?.addEventListener("abort", onAbort, { once: true });
  ctl.signal.addEventListener("abort", () => channel.close(abortedError("eval run", ctl.signal.reason)), { once: true });
  const ev = { config: config.name, promptId: prompt.id };
  const writes: Promise<void>[] = [];
  const judgeOf = judgeBatcher(o.judge, judgeEmb);
  const fail = (index: number, error: PickrankError): void => {
    job.report.failed.push({ ...ev, seedIndex: index, seed: seeds[index]!, error });
    o.onEvent?.({ type: "failed", ...ev, seedIndex: index, error });
  };
  try {
    const producer = produce(
      {
        promptIndex: 0,
        phase: "final",
        prompt: prompt.text,
        ...(config.negativePrompt !== undefined ? { negativePrompt: config.negativePrompt } : {}),
        seeds,
        indices,
        params: config.params,
        backend: config.backend,
        journal: storeJournal(o, job),
        signal: ctl.signal,
        emit: (e) => {
          if (e.type !== "rendered") return;
          job.report[e.reused ? "reused" : "rendered"]++;
          o.onEvent?.({ type: "rendered", ...ev, seedIndex: e.index, backend: e.backend, reused: e.reused });
        },
        warn: (w) =>
          o.onEvent?.({ type: "warning", config: config.name, message: w.message, ...(w.backend ? { backend: w.backend } : {}) }),
      },
      channel,
    );
    const consumer = consumeAndEmbed(channel, {
      scorer: o.scorer,
      batchSize: o.batchSize,
      phase: "final",
      signal: ctl.signal,
      onEmbedded: (c) => writes.push(storeScores(o, job, c, textEmb, judgeOf)),
      onFailed: (f) => fail(Number(f.key), f.error),
    });
    const [p, c] = await Promise.allSettled([producer, consumer]);
    const w = await Promise.allSettled(writes);
    if (o.signal?.aborted) throw abortedError("eval run", o.signal.reason);
    const broken = [p, c, ...w].find((r) => r.status === "rejected");
    if (p.status === "fulfilled") for (const f of p.value.failed) fail(f.index ?? Number(f.key), f.error);
    if (broken?.status === "rejected") handleJobError(broken.reason, indices, job, fail);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
}

/** A job that failed as a whole: its store failing is fatal; a backend that rendered nothing fails the job's candidates. */
function handleJobError(reason: unknown, indices: number[], job: Job, fail: (i: number, e: PickrankError) => void): void {
  const err = toPickrankError(reason, "INTERNAL");
  if (err.code === "FILESYSTEM" || err.code === "NOT_FOUND" || err.code === "CLOSED" || err.code === "INTERNAL") throw err;
  const failedAlready = new Set(
    job.report.failed.filter((f) => f.config === job.config.name && f.promptId === job.prompt.id).map((f) => f.seedIndex),
  );
  for (const i of indices) {
    const k = candidateKey({ config: job.config.name, promptId: job.prompt.id, seedIndex: i });
    if (!job.done.has(k) && !failedAlready.has(i)) fail(i, err);
  }
}

/**
 * The judge's score of a candidate, with the candidates the consumer hands over in one batch (in the
 * same tick) embedded by the judge in one call too; null without a judge.
 */
function judgeBatcher(judge: EvalScorer | undefined, text: Float32Array | undefined): (c: Embedded) => Promise<number | null> {
  if (!judge || !text) return async () => null;
  let pending: { c: Embedded; resolve: (v: number) => void; reject: (e: unknown) => void }[] = [];
  const flush = async (): Promise<void> => {
    const batch = pending;
    pending = [];
    try {
      const embs = await judge.embedImages(batch.map((b) => b.c.image));
      batch.forEach((b, i) => {
        const e = embs[i];
        if (e) b.resolve(judge.scoreEmbeddings(text, [e])[0]!.score);
        else
          b.reject(
            new PickrankError("INFERENCE_FAILED", `Expected the judge's embedding of the candidate with seed ${b.c.seed} but got none`),
          );
      });
    } catch (e) {
      for (const b of batch) b.reject(e);
    }
  };
  return (c) =>
    new Promise((resolve, reject) => {
      pending.push({ c, resolve, reject });
      if (pending.length === 1) queueMicrotask(() => void flush());
    });
}

/** Scores one embedded candidate with the selector (and the judge), then writes both to the store. */
async function storeScores(
  o: EvalRunOptions,
  job: Job,
  c: Embedded,
  textEmb: Float32Array,
  judgeOf: (c: Embedded) => Promise<number | null>,
): Promise<void> {
  const score = o.scorer.scoreEmbeddings(textEmb, [c.embedding])[0]!.score;
  const judgeScore = await judgeOf(c);
  const key = { config: job.config.name, promptId: job.prompt.id, seedIndex: c.index };
  await o.store.setScores(key, { score, judgeScore });
  job.done.add(candidateKey(key));
  job.report.scored++;
  o.onEvent?.({ type: "scored", ...key });
}

/**
 * bestOf: render N candidates per prompt, score each micro-batch as soon as it arrives (scoring never
 * waits for all N), and return every survivor ranked with the selected top k.
 */
import { randomInt } from "node:crypto";
import type { BackendEvent, GenerateRequest, GenerationParams } from "@pickrank/adapters";
import type { CandidateMeta } from "@pickrank/contract";
import { invalidParameter, isPickrankError, PickrankError, toPickrankError } from "@pickrank/contract";
import { DEFAULT_DIVERSE_THRESHOLD, selectDiverse } from "./diverse.ts";
import { OutputDir, type StoredCandidate } from "./output.ts";
import { kendall, spearman } from "./rank-stats.ts";
import { checkScorePromptOptions, scorePromptFor } from "./score-prompt.ts";
import type {
  BestOfBatchResult,
  BestOfEvent,
  BestOfOptions,
  BestOfResult,
  CandidateTimings,
  FailedCandidate,
  ModelInfo,
  OutputOptions,
  Phase,
  PromptError,
  RankedCandidate,
  RefineReport,
  SelectorScorer,
} from "./types.ts";

const DEFAULT_BATCH = 8;
/** Seeds stay below 2^31 so that seed + n fits every backend (A1111 takes 32-bit seeds). */
const MAX_SEED = 2 ** 31 - 1;

interface Arrival {
  index: number;
  seed: number;
  backend: string;
  format: "png" | "jpeg" | "webp";
  image: Buffer;
  timings: CandidateTimings;
  reused: boolean;
  meta?: CandidateMeta | undefined;
}
interface Scored extends Arrival {
  embedding: Float32Array;
}

interface Ctx {
  opts: BestOfOptions;
  scorer: SelectorScorer;
  n: number;
  top: number;
  minSurvivors: number;
  batchSize: number;
  params: GenerationParams;
  draftParams: GenerationParams | undefined;
  k: number;
  diverseThreshold: number | undefined;
  out: OutputDir | undefined;
  seed: number;
  emit: (e: BestOfEvent) => void;
}

function now(): number {
  return performance.now();
}

function abortError(signal: AbortSignal | undefined): PickrankError {
  const reason: unknown = signal?.reason;
  if (isPickrankError(reason) && reason.code === "ABORTED") return reason;
  return new PickrankError("ABORTED", "best-of was cancelled; expected it to run to the end", { cause: reason });
}

function isPosInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

function validate(opts: BestOfOptions): { prompts: string[]; batch: boolean } {
  if (!opts || typeof opts !== "object") throw invalidParameter("options", "an object", opts);
  if (opts.prompt !== undefined && opts.prompts !== undefined) {
    throw new PickrankError("BAD_INPUT", "Expected either prompt or prompts but received both", { details: { parameter: "prompt" } });
  }
  let prompts: string[];
  if (opts.prompts !== undefined) {
    if (!Array.isArray(opts.prompts) || opts.prompts.length === 0) throw invalidParameter("prompts", "a non-empty array of strings", opts.prompts);
    opts.prompts.forEach((p, i) => {
      if (typeof p !== "string" || p.trim() === "") throw invalidParameter(`prompts[${i}]`, "a non-empty string", p);
    });
    prompts = opts.prompts;
  } else {
    if (typeof opts.prompt !== "string" || opts.prompt.trim() === "") throw invalidParameter("prompt", "a non-empty string", opts.prompt);
    prompts = [opts.prompt];
  }
  if (!isPosInt(opts.n)) throw invalidParameter("n", "positive integer", opts.n);
  if (opts.top !== undefined && (!isPosInt(opts.top) || opts.top > opts.n)) throw invalidParameter("top", `integer between 1 and n (${opts.n})`, opts.top);
  if (opts.minSurvivors !== undefined && (!isPosInt(opts.minSurvivors) || opts.minSurvivors > opts.n)) {
    throw invalidParameter("minSurvivors", `integer between 1 and n (${opts.n})`, opts.minSurvivors);
  }
  if (opts.batchSize !== undefined && !isPosInt(opts.batchSize)) throw invalidParameter("batchSize", "positive integer", opts.batchSize);
  if (opts.seed !== undefined && (!Number.isInteger(opts.seed) || opts.seed < 0 || opts.seed + opts.n - 1 > Number.MAX_SAFE_INTEGER)) {
    throw invalidParameter("seed", "non-negative integer", opts.seed);
  }
  if (!opts.backend || typeof opts.backend.generate !== "function") throw invalidParameter("backend", "a Backend (with generate())", opts.backend);
  const sc = opts.scorer as Partial<SelectorScorer> | undefined;
  if (!sc || typeof sc.embedText !== "function" || typeof sc.embedImages !== "function" || typeof sc.scoreEmbeddings !== "function") {
    throw invalidParameter("scorer", "a Scorer (with embedText, embedImages, scoreEmbeddings)", opts.scorer);
  }
  if (opts.refine !== undefined) {
    const d = opts.refine?.draft;
    if (!d || typeof d !== "object") throw invalidParameter("refine.draft", "an object with steps, width, height or params", d);
    for (const key of ["steps", "width", "height"] as const) {
      if (d[key] !== undefined && !isPosInt(d[key])) throw invalidParameter(`refine.draft.${key}`, "positive integer", d[key]);
    }
    if (d.steps === undefined && d.width === undefined && d.height === undefined && (d.params === undefined || Object.keys(d.params).length === 0)) {
      throw invalidParameter("refine.draft", "at least one cheaper setting (steps, width, height or params)", d);
    }
    const k = opts.refine.k;
    const top = opts.top ?? 1;
    if (k !== undefined && (!isPosInt(k) || k > opts.n || k < top)) throw invalidParameter("refine.k", `integer between top (${top}) and n (${opts.n})`, k);
  }
  if (opts.diverse !== undefined && typeof opts.diverse !== "boolean") {
    const t = opts.diverse.threshold;
    if (t !== undefined && (typeof t !== "number" || !(t > -1 && t <= 1))) throw invalidParameter("diverse.threshold", "number in (-1, 1]", t);
  }
  if (opts.out !== undefined) {
    const dir = typeof opts.out === "string" ? opts.out : opts.out.dir;
    if (typeof dir !== "string" || dir === "") throw invalidParameter("out", "a folder path", dir);
    const keep = typeof opts.out === "string" ? undefined : opts.out.keep;
    if (keep !== undefined && keep !== "top" && keep !== "all") throw invalidParameter("out.keep", '"top" or "all"', keep);
  }
  checkScorePromptOptions(opts, prompts.length, opts.prompts !== undefined);
  return { prompts, batch: opts.prompts !== undefined };
}

export function modelInfo(scorer: SelectorScorer): ModelInfo {
  const m = scorer.manifest;
  const info: ModelInfo = { dir: scorer.modelDir, dtype: m.dtype };
  if (m.source.repo !== undefined) info.repo = m.source.repo;
  if (m.source.revision !== undefined) info.revision = m.source.revision;
  return info;
}

/** Best-of-N for one prompt. */
export function bestOf(opts: BestOfOptions & { prompt: string; prompts?: undefined }): Promise<BestOfResult>;
/** Best-of-N for several prompts: they share the scorer, the backend and the output folder; one failing prompt does not stop the others. */
export function bestOf(opts: BestOfOptions & { prompts: string[]; prompt?: undefined }): Promise<BestOfBatchResult>;
export function bestOf(opts: BestOfOptions): Promise<BestOfResult | BestOfBatchResult>;
export async function bestOf(opts: BestOfOptions): Promise<BestOfResult | BestOfBatchResult> {
  const t0 = now();
  const { prompts, batch } = validate(opts);
  const signal = opts.signal;
  if (signal?.aborted) throw abortError(signal);
  const n = opts.n;
  const top = opts.top ?? 1;
  const params: GenerationParams = { ...(opts.params ?? {}) };
  let draftParams: GenerationParams | undefined;
  let k = 0;
  if (opts.refine) {
    const d = opts.refine.draft;
    draftParams = { ...params, ...(d.params ?? {}) };
    if (d.steps !== undefined) draftParams.steps = d.steps;
    if (d.width !== undefined) draftParams.width = d.width;
    if (d.height !== undefined) draftParams.height = d.height;
    k = opts.refine.k ?? Math.max(top, Math.min(n, 4));
  }
  const diverseThreshold = opts.diverse ? (typeof opts.diverse === "object" ? (opts.diverse.threshold ?? DEFAULT_DIVERSE_THRESHOLD) : DEFAULT_DIVERSE_THRESHOLD) : undefined;

  let out: OutputDir | undefined;
  let seed: number;
  if (opts.out !== undefined) {
    const o: OutputOptions = typeof opts.out === "string" ? { dir: opts.out } : opts.out;
    // Everything that decides which pixels get rendered; selection settings (top, diverse, keep) may change between runs.
    const settings: Record<string, unknown> = {
      prompts,
      negativePrompt: opts.negativePrompt ?? null,
      n,
      seed: opts.seed ?? null,
      params,
      refine: draftParams ? { draftParams, k } : null,
      backend: opts.backend.kind,
      fingerprint: o.fingerprint ?? null,
    };
    out = await OutputDir.open({ dir: o.dir, keep: o.keep, resume: o.resume, settings, seed: opts.seed, randomSeed: () => randomInt(0, MAX_SEED - n) });
    seed = out.seed;
  } else {
    seed = opts.seed ?? randomInt(0, MAX_SEED - n);
  }

  const ctx: Ctx = {
    opts,
    scorer: opts.scorer,
    n,
    top,
    minSurvivors: opts.minSurvivors ?? 1,
    batchSize: opts.batchSize ?? DEFAULT_BATCH,
    params,
    draftParams,
    k,
    diverseThreshold,
    out,
    seed,
    emit: (e) => opts.onEvent?.(e),
  };

  try {
    return await runAll(ctx, prompts, batch, t0);
  } finally {
    await out?.close();
  }
}

async function runAll(ctx: Ctx, prompts: string[], batch: boolean, t0: number): Promise<BestOfResult | BestOfBatchResult> {
  const { opts, out } = ctx;
  const signal = opts.signal;
  const runs: BestOfResult[] = [];
  const errors: PromptError[] = [];
  const files: string[] = [];
  for (let pi = 0; pi < prompts.length; pi++) {
    const prompt = prompts[pi]!;
    try {
      const r = await runPrompt(ctx, pi, prompt);
      if (out) files.push(...(await out.writePrompt(r, pi, batch)));
      runs.push(r);
      ctx.emit({ type: "prompt-done", promptIndex: pi, prompt, best: { index: r.best.index, seed: r.best.seed, score: r.best.score } });
    } catch (e) {
      const err = toPickrankError(e);
      if (!batch || err.code === "ABORTED" || err.code === "CONFLICT" || signal?.aborted) throw signal?.aborted ? abortError(signal) : err;
      errors.push({ promptIndex: pi, prompt, error: err });
      ctx.emit({ type: "prompt-done", promptIndex: pi, prompt, error: err });
    }
  }
  for (const f of files) ctx.emit({ type: "written", file: f });

  const model = modelInfo(opts.scorer);
  if (!batch) {
    const r = runs[0]!;
    if (out) {
      await out.pruneStale();
      r.out = { dir: out.dir, resultFile: out.resultFile, files, resumed: out.resumedCount, work: await out.workUsage() };
      await out.writeResult(serializeResult(r));
    }
    return r;
  }
  const res: BestOfBatchResult = { runs, errors, model, device: opts.scorer.device, timings: { totalMs: now() - t0 } };
  if (out) {
    await out.pruneStale();
    res.out = { dir: out.dir, resultFile: out.resultFile, files, resumed: out.resumedCount, work: await out.workUsage() };
    await out.writeResult(serializeResult(res));
  }
  return res;
}

async function runPrompt(ctx: Ctx, pi: number, prompt: string): Promise<BestOfResult> {
  const t0 = now();
  const { scorer, n, opts } = ctx;
  const seeds = Array.from({ length: n }, (_, i) => ctx.seed + i);
  // The scoring prompt: the prompt without A1111/ComfyUI syntax unless the caller says otherwise.
  const scorePrompt = scorePromptFor(opts, pi, prompt, scorer.countTokens?.bind(scorer));
  const text = await scorer.embedText(scorePrompt.text);
  const all = seeds.map((_, i) => i);
  const warnings: string[] = [...scorePrompt.warnings];
  let ranked: RankedCandidate[];
  let failed: FailedCandidate[];
  let refine: RefineReport | undefined;
  let firstScoredMs: number | null = null;
  let generateMs = 0;
  let scoreTailMs = 0;

  if (ctx.draftParams) {
    const d = await runPhase(ctx, { pi, prompt, phase: "draft", text, seeds, indices: all, params: ctx.draftParams, t0 });
    firstScoredMs = d.firstScoredMs;
    generateMs += d.generateMs;
    scoreTailMs += d.scoreTailMs;
    const drafts = rankSurvivors(scorer, text, d.survivors);
    checkSurvivors(prompt, drafts.length, n, ctx.minSurvivors, d.failed, "draft");
    const kk = Math.min(ctx.k, drafts.length);
    const chosen = drafts.slice(0, kk);
    const f = await runPhase(ctx, { pi, prompt, phase: "final", text, seeds, indices: chosen.map((c) => c.index), params: ctx.params, t0 });
    generateMs += f.generateMs;
    scoreTailMs += f.scoreTailMs;
    ranked = rankSurvivors(scorer, text, f.survivors);
    failed = [...d.failed, ...f.failed];
    checkSurvivors(prompt, ranked.length, kk, Math.min(ctx.minSurvivors, kk), f.failed, "final");
    const byIndex = new Map(drafts.map((c) => [c.index, c]));
    for (const c of ranked) {
      const dc = byIndex.get(c.index)!;
      c.draft = { score: dc.score, prob: dc.prob, rank: dc.rank };
    }
    const draftBest = drafts[0]!;
    const finalOfDraftBest = ranked.find((c) => c.index === draftBest.index);
    refine = {
      k: kk,
      draftParams: ctx.draftParams,
      drafts,
      compared: ranked.length,
      spearman: spearman(ranked.map((c) => c.draft!.score), ranked.map((c) => c.score)),
      kendall: kendall(ranked.map((c) => c.draft!.score), ranked.map((c) => c.score)),
      bestStayedBest: finalOfDraftBest ? finalOfDraftBest.rank === 1 : null,
      draftBestFinalRank: finalOfDraftBest ? finalOfDraftBest.rank : null,
    };
  } else {
    const r = await runPhase(ctx, { pi, prompt, phase: "final", text, seeds, indices: all, params: ctx.params, t0 });
    firstScoredMs = r.firstScoredMs;
    generateMs = r.generateMs;
    scoreTailMs = r.scoreTailMs;
    ranked = rankSurvivors(scorer, text, r.survivors);
    failed = r.failed;
    checkSurvivors(prompt, ranked.length, n, ctx.minSurvivors, failed, "final");
  }

  let top: RankedCandidate[];
  let diverse: BestOfResult["diverse"];
  const want = Math.min(ctx.top, ranked.length);
  if (ctx.top > ranked.length) warnings.push(`top ${ctx.top} requested but only ${ranked.length} candidates survived`);
  if (ctx.diverseThreshold !== undefined) {
    const { picked, skipped } = selectDiverse(ranked, want, ctx.diverseThreshold);
    top = picked;
    diverse = { threshold: ctx.diverseThreshold, skipped };
  } else {
    top = ranked.slice(0, want);
  }
  if (failed.length > 0) {
    const codes = [...new Set(failed.map((f) => f.error.code))].join(", ");
    warnings.push(`${failed.length} candidate render(s) failed (${codes}); see failed[]`);
  }

  const result: BestOfResult = {
    prompt,
    scorePrompt: scorePrompt.text,
    n,
    seeds,
    params: ctx.params,
    best: top[0]!,
    top,
    ranked,
    failed,
    warnings,
    model: modelInfo(scorer),
    device: scorer.device,
    timings: { totalMs: now() - t0, firstScoredMs, generateMs, scoreTailMs },
  };
  if (opts.negativePrompt !== undefined) result.negativePrompt = opts.negativePrompt;
  if (refine) result.refine = refine;
  if (diverse) result.diverse = diverse;
  return result;
}

function checkSurvivors(prompt: string, survived: number, asked: number, min: number, failed: FailedCandidate[], phase: Phase): void {
  if (survived >= min) return;
  const first = failed.find((f) => f.phase === phase)?.error;
  const why = first ? ` (first failure: ${first.code}: ${first.message})` : "";
  throw new PickrankError(
    "TOO_FEW_CANDIDATES",
    `Expected at least ${min} surviving candidate(s) for ${JSON.stringify(prompt.length > 60 ? prompt.slice(0, 57) + "..." : prompt)} but ${survived} of ${asked} survived${phase === "draft" ? " the draft pass" : ""}${why}`,
    { cause: first, details: { survived, asked, minSurvivors: min, phase, failed: failed.map((f) => ({ index: f.index, seed: f.seed, code: f.error.code })) } },
  );
}

function rankSurvivors(scorer: SelectorScorer, text: Float32Array, survivors: Scored[]): RankedCandidate[] {
  if (survivors.length === 0) return [];
  const s = scorer.scoreEmbeddings(text, survivors.map((x) => x.embedding));
  const ranked: RankedCandidate[] = survivors.map((x, i) => ({
    index: x.index,
    seed: x.seed,
    score: s[i]!.score,
    prob: s[i]!.prob,
    rank: 0,
    backend: x.backend,
    format: x.format,
    image: x.image,
    embedding: x.embedding,
    timings: x.timings,
    reused: x.reused,
    ...(x.meta !== undefined ? { meta: x.meta } : {}),
  }));
  // Ties keep request order so a rerun ranks identically.
  ranked.sort((a, b) => b.score - a.score || a.index - b.index);
  ranked.forEach((c, i) => (c.rank = i + 1));
  return ranked;
}

interface PhaseInput {
  pi: number;
  prompt: string;
  phase: Phase;
  text: Float32Array;
  seeds: number[];
  indices: number[];
  params: GenerationParams;
  t0: number;
}

interface PhaseOutput {
  survivors: Scored[];
  failed: FailedCandidate[];
  firstScoredMs: number | null;
  generateMs: number;
  scoreTailMs: number;
}

/**
 * One pass over a set of candidate indices: the backend renders those not already in the journal
 * while a worker embeds whatever has arrived, in micro-batches, until both are done.
 */
async function runPhase(ctx: Ctx, inp: PhaseInput): Promise<PhaseOutput> {
  const { scorer, opts, out } = ctx;
  const { pi, phase, prompt } = inp;
  const userSignal = opts.signal;
  const ctl = new AbortController();
  const onUserAbort = () => ctl.abort(userSignal?.reason);
  userSignal?.addEventListener("abort", onUserAbort, { once: true });

  const queue: Arrival[] = [];
  const survivors: Scored[] = [];
  const failed: FailedCandidate[] = [];
  const arrived = new Set<number>();
  const total = inp.indices.length;
  let rendered = 0;
  let scoredCount = 0;
  let firstScoredMs: number | null = null;
  let genDone = false;
  let wake: (() => void) | null = null;
  const notify = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  ctl.signal.addEventListener("abort", notify, { once: true });

  try {
    // Candidates a previous run with the same settings already rendered go first, straight to scoring.
    const toRender: number[] = [];
    for (const idx of inp.indices) {
      const st: StoredCandidate | undefined = out?.stored(pi, phase, idx);
      if (st && out) {
        const image = await out.load(st);
        const { seed, backend, format, timings, meta } = st;
        queue.push({ index: idx, seed, backend, format, image, timings, reused: true, meta });
        arrived.add(idx);
        out.resumedCount++;
      } else {
        toRender.push(idx);
      }
    }
    ctx.emit({ type: "prompt-start", promptIndex: pi, prompt, phase, n: total, reused: queue.length });
    for (const a of queue) {
      rendered++;
      ctx.emit({ type: "rendered", promptIndex: pi, phase, index: a.index, seed: a.seed, backend: a.backend, reused: true, rendered, total });
    }

    const embedBatch = async (batch: Arrival[]): Promise<(Float32Array | PickrankError)[]> => {
      try {
        return await scorer.embedImages(batch.map((b) => b.image), { signal: ctl.signal });
      } catch (e) {
        if (ctl.signal.aborted) throw e;
        if (batch.length === 1) return [toPickrankError(e, "BAD_IMAGE", `Could not score the candidate with seed ${batch[0]!.seed}`)];
        // One bad image must not sink its batch: retry one by one to find which.
        const res: (Float32Array | PickrankError)[] = [];
        for (const b of batch) {
          try {
            res.push((await scorer.embedImages([b.image], { signal: ctl.signal }))[0]!);
          } catch (e2) {
            if (ctl.signal.aborted) throw e2;
            res.push(toPickrankError(e2, "BAD_IMAGE", `Could not score the candidate with seed ${b.seed}`));
          }
        }
        return res;
      }
    };

    let tGenEnd = 0;
    let tScoreEnd = 0;
    const worker = (async () => {
      for (;;) {
        if (ctl.signal.aborted) throw abortError(ctl.signal);
        if (queue.length === 0) {
          if (genDone) break;
          await new Promise<void>((r) => (wake = r));
          continue;
        }
        const batch = queue.splice(0, ctx.batchSize);
        const embs = await embedBatch(batch);
        if (ctl.signal.aborted) throw abortError(ctl.signal);
        batch.forEach((a, i) => {
          const e = embs[i];
          if (e instanceof Float32Array) {
            survivors.push({ ...a, embedding: e });
            scoredCount++;
            firstScoredMs ??= now() - inp.t0;
            ctx.emit({ type: "scored", promptIndex: pi, phase, index: a.index, seed: a.seed, backend: a.backend, scored: scoredCount, total });
          } else {
            const error = e ?? new PickrankError("INFERENCE_FAILED", `Expected an embedding for the candidate with seed ${a.seed} but the scorer returned none`);
            failed.push({ index: a.index, seed: a.seed, backend: a.backend, phase, error });
            ctx.emit({ type: "failed", promptIndex: pi, phase, index: a.index, seed: a.seed, backend: a.backend, error });
          }
        });
      }
      tScoreEnd = now();
    })();
    let workerError: unknown;
    const workerDone = worker.catch((e: unknown) => {
      workerError = e;
      ctl.abort(e);
    });

    const tGen0 = now();
    let genError: unknown;
    let fatal: unknown;
    const pending = new Set(toRender);
    if (toRender.length > 0 && !ctl.signal.aborted) {
      // Each candidate's key is its index in the request, so results need no remapping.
      const req: GenerateRequest = {
        prompt,
        n: toRender.length,
        seeds: toRender.map((i) => inp.seeds[i]!),
        keys: toRender.map(String),
        params: inp.params,
        signal: ctl.signal,
        onEvent: (e: BackendEvent) => ctx.emit({ type: "backend", promptIndex: pi, phase, event: e }),
      };
      if (opts.negativePrompt !== undefined) req.negativePrompt = opts.negativePrompt;
      try {
        for await (const g of opts.backend.generate(req)) {
          // A backend slow to notice the abort: stop taking its candidates (return() ends its generator).
          if (ctl.signal.aborted) break;
          const idx = Number(g.key);
          if (!pending.has(idx) || arrived.has(idx)) continue; // unknown or duplicate: nothing to attach it to
          arrived.add(idx);
          if (!g.ok) {
            failed.push({ index: idx, seed: g.seed, backend: g.backend, phase, error: g.error });
            ctx.emit({ type: "failed", promptIndex: pi, phase, index: idx, seed: g.seed, backend: g.backend, error: g.error });
            continue;
          }
          const { seed, backend, format, image, timings, meta } = g;
          const a: Arrival = { index: idx, seed, backend, format, image, timings, reused: false, meta };
          if (out) {
            try {
              await out.save(pi, phase, a);
            } catch (e) {
              fatal = e;
              break;
            }
          }
          queue.push(a);
          rendered++;
          ctx.emit({ type: "rendered", promptIndex: pi, phase, index: idx, seed: a.seed, backend: a.backend, reused: false, rendered, total });
          notify();
        }
      } catch (e) {
        genError = e;
      }
    }
    tGenEnd = now();
    genDone = true;
    notify();
    if (fatal !== undefined) ctl.abort(fatal);
    await workerDone;

    if (userSignal?.aborted) throw abortError(userSignal);
    if (fatal !== undefined) throw toPickrankError(fatal);
    if (workerError !== undefined) throw toPickrankError(workerError);
    const missing = toRender.filter((i) => !arrived.has(i));
    if (genError !== undefined) {
      const err = toPickrankError(genError, "BACKEND_PROTOCOL");
      // Nothing at all came back: the backend's own error says more than "too few candidates".
      if (arrived.size === 0) throw err;
      for (const idx of missing) failed.push({ index: idx, seed: inp.seeds[idx]!, backend: opts.backend.id, phase, error: err });
    } else {
      for (const idx of missing) {
        const error = new PickrankError("BACKEND_PROTOCOL", `Expected the backend to return the candidate with seed ${inp.seeds[idx]} but it finished without it`);
        failed.push({ index: idx, seed: inp.seeds[idx]!, backend: opts.backend.id, phase, error });
      }
    }
    survivors.sort((a, b) => a.index - b.index);
    failed.sort((a, b) => a.index - b.index);
    return { survivors, failed, firstScoredMs, generateMs: tGenEnd - tGen0, scoreTailMs: Math.max(0, tScoreEnd - tGenEnd) };
  } finally {
    userSignal?.removeEventListener("abort", onUserAbort);
  }
}

/** The result as JSON: images and embeddings left out (each kept image has its `file`), errors as {code, message}. */
export function serializeResult(r: BestOfResult | BestOfBatchResult): unknown {
  // A hand walk instead of a JSON.stringify replacer: Buffer.toJSON would first expand every image into a number array.
  const walk = (v: unknown): unknown => {
    if (v instanceof PickrankError) return v.toJSON();
    if (v instanceof Uint8Array || v instanceof Float32Array) return undefined;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        // comfyPrompt (CandidateMeta): the whole API prompt per candidate; the kept PNGs and the journal hold it.
        if (k === "image" || k === "embedding" || k === "comfyPrompt" || x === undefined) continue;
        o[k] = walk(x);
      }
      return o;
    }
    return v;
  };
  return walk(r);
}

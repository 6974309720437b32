/**
 * bestOf: render N candidates per prompt, score each micro-batch as soon as it arrives (scoring never
 * waits for all N), and return every survivor ranked with the selected top k.
 *
 * Following one candidate through the code, top-down:
 *   select.ts        checks the options (options.ts), opens the output folder, runs each prompt, saves
 *   run-prompt.ts    one prompt: one pass, or draft-then-refine's two; selection and failures (outcome.ts)
 *   pass.ts          one pass: a producer and a scoring consumer joined by a channel
 *   produce.ts       generated (the backend) or replayed, and tracked (the journal) before it is handed on
 *   score-consumer.ts  embedded by the scorer in micro-batches
 *   rank.ts          scored against the prompt and ranked; the top k selected (diverse.ts)
 *   output.ts        saved: PNGs with their metadata, result.json, the journal itself
 */
import { randomInt } from "node:crypto";
import { abortedError, toPickrankError, type Backend, type GenerationParams } from "@pickrank/contract";
import { DEFAULT_DIVERSE_THRESHOLD } from "./diverse.ts";
import { checkBestOfOptions, namer, type Namer } from "./options.ts";
import { OutputDir } from "./output.ts";
import { runPrompt, type PromptRunContext } from "./run-prompt.ts";
import { modelInfo, serializeResult } from "./result.ts";
import type { BestOfBatchResult, BestOfOptions, BestOfResult, OutputOptions, OutputReport, PromptError } from "./types.ts";

const DEFAULT_BATCH = 8;

/** Best-of-N for one prompt. */
export function bestOf(opts: BestOfOptions & { prompt: string; prompts?: undefined }): Promise<BestOfResult>;
/** Best-of-N for several prompts: they share the scorer, the backend and the output folder; one failing prompt does not stop the others. */
export function bestOf(opts: BestOfOptions & { prompts: string[]; prompt?: undefined }): Promise<BestOfBatchResult>;
export function bestOf(opts: BestOfOptions): Promise<BestOfResult | BestOfBatchResult>;
/**
 * @throws BAD_INPUT (options.ts), ABORTED (`signal`), CONFLICT (an output folder holding another run
 *   or in use), FILESYSTEM / NOT_FOUND (a path of `out` that cannot be written), and for one prompt
 *   TOO_FEW_CANDIDATES or the backend's error when it rendered nothing.
 */
export async function bestOf(opts: BestOfOptions): Promise<BestOfResult | BestOfBatchResult> {
  const t0 = performance.now();
  checkBestOfOptions(opts);
  if (opts.signal?.aborted) throw abortedError("best-of", opts.signal.reason);
  const name = namer(opts.optionNames);
  const prompts = opts.prompts ?? [opts.prompt!];
  const base = resolveRun(opts, name);
  const settingsWarnings = warningsFor(opts, base, name);
  for (const message of settingsWarnings) base.warn({ message });

  let out: OutputDir | undefined;
  if (opts.out !== undefined) {
    const o: OutputOptions = typeof opts.out === "string" ? { dir: opts.out } : opts.out;
    out = await OutputDir.open({
      dir: o.dir,
      keep: o.keep,
      resume: o.resume,
      settings: resumeSettings(opts, prompts, base),
      seed: opts.seed,
      randomSeed: () => randomSeed(opts.backend, opts.n),
      option: name("out"),
    });
  }
  const ctx: PromptRunContext = {
    ...base,
    seed: out?.seed ?? opts.seed ?? randomSeed(opts.backend, opts.n),
    ...(out ? { journal: out } : {}),
  };
  try {
    return await runAll(ctx, opts, prompts, out, { t0, settingsWarnings });
  } finally {
    await out?.close();
  }
}

/** The run's settings from the checked options (everything but the seed and the journal). */
function resolveRun(opts: BestOfOptions, name: Namer): Omit<PromptRunContext, "seed"> {
  const top = opts.top ?? 1;
  const params: GenerationParams = { ...(opts.params ?? {}) };
  let refine: PromptRunContext["refine"];
  if (opts.refine) {
    const d = opts.refine.draft;
    const draftParams: GenerationParams = { ...params, ...(d.params ?? {}) };
    if (d.steps !== undefined) draftParams.steps = d.steps;
    if (d.width !== undefined) draftParams.width = d.width;
    if (d.height !== undefined) draftParams.height = d.height;
    refine = { draftParams, k: opts.refine.k ?? Math.max(top, Math.min(opts.n, 4)) };
  }
  const d = opts.diverse;
  const diverseThreshold = d ? (typeof d === "object" ? (d.threshold ?? DEFAULT_DIVERSE_THRESHOLD) : DEFAULT_DIVERSE_THRESHOLD) : undefined;
  const emit = (e: Parameters<NonNullable<BestOfOptions["onEvent"]>>[0]) => opts.onEvent?.(e);
  return {
    backend: opts.backend,
    scorer: opts.scorer,
    ...(opts.negativePrompt !== undefined ? { negativePrompt: opts.negativePrompt } : {}),
    batchSize: opts.batchSize ?? DEFAULT_BATCH,
    ...(opts.signal ? { signal: opts.signal } : {}),
    emit,
    warn: (w) => emit({ type: "warning", ...w }),
    n: opts.n,
    top,
    minSurvivors: opts.minSurvivors,
    params,
    refine,
    diverseThreshold,
    name,
    model: modelInfo(opts.scorer),
    scorePrompt: { scorePrompt: opts.scorePrompt, scoreRawPrompt: opts.scoreRawPrompt },
  };
}

/** Settings that do nothing or defeat their purpose: said, not refused (the run is still valid). */
function warningsFor(opts: BestOfOptions, run: Omit<PromptRunContext, "seed">, name: Namer): string[] {
  const w: string[] = [];
  if (run.diverseThreshold !== undefined && run.top === 1) {
    w.push(
      `${name("diverse")} does nothing with ${name("top")} 1: near-duplicates are passed over only when selecting 2 or more; ` +
        "the best candidate is selected as usual",
    );
  }
  if (run.refine && run.refine.k >= opts.n) {
    w.push(
      `draft-then-refine re-renders all ${opts.n} drafts (${name("refine.k")} ${run.refine.k} with ${name("n")} ${opts.n}), ` +
        "so the draft pass only adds work; " +
        `raise ${name("n")} above ${name("top")} and ${name("refine.k")}, or drop the draft settings`,
    );
  }
  return w;
}

/**
 * A random first seed such that seed + n − 1 stays within the backend's largest seed (and below
 * 2^48, the widest range node:crypto's randomInt draws from).
 */
export function randomSeed(backend: Pick<Backend, "maxSeed">, n: number): number {
  const lastFirst = Math.min(backend.maxSeed, 2 ** 48 - 2) - (n - 1);
  return randomInt(0, Math.max(0, lastFirst) + 1);
}

/**
 * Everything that decides which pixels get rendered; a journal with other settings is a CONFLICT
 * naming the fields. Selection settings (top, diverse, keep) may change between runs. The backend's
 * fingerprint (its workflow …) is included, so a program resuming with another workflow is refused.
 */
function resumeSettings(opts: BestOfOptions, prompts: string[], run: Omit<PromptRunContext, "seed">): Record<string, unknown> {
  const o = typeof opts.out === "object" ? opts.out : undefined;
  return {
    prompts,
    negativePrompt: opts.negativePrompt ?? null,
    n: opts.n,
    seed: opts.seed ?? null,
    params: run.params,
    refine: run.refine ? { draftParams: run.refine.draftParams, k: run.refine.k } : null,
    backend: opts.backend.fingerprint(),
    fingerprint: o?.fingerprint ?? null,
  };
}

interface RunAllExtras {
  t0: number;
  settingsWarnings: string[];
}

async function runAll(
  ctx: PromptRunContext,
  opts: BestOfOptions,
  prompts: string[],
  out: OutputDir | undefined,
  x: RunAllExtras,
): Promise<BestOfResult | BestOfBatchResult> {
  const batch = opts.prompts !== undefined;
  const runs: BestOfResult[] = [];
  const errors: PromptError[] = [];
  const files: string[] = [];
  for (const [pi, prompt] of prompts.entries()) {
    try {
      const r = await runPrompt(ctx, pi, prompt);
      if (!batch) r.warnings.unshift(...x.settingsWarnings);
      if (out) files.push(...(await out.writePrompt(r, pi, batch)));
      runs.push(r);
      ctx.emit({ type: "prompt-done", promptIndex: pi, prompt, best: { index: r.best.index, seed: r.best.seed, score: r.best.score } });
    } catch (e) {
      const err = toPickrankError(e);
      if (opts.signal?.aborted) throw abortedError("best-of", opts.signal.reason);
      // Fatal for every prompt: a folder we cannot write or that belongs to another run.
      if (!batch || ["ABORTED", "CONFLICT", "FILESYSTEM", "NOT_FOUND"].includes(err.code)) throw err;
      errors.push({ promptIndex: pi, prompt, error: err });
      ctx.emit({ type: "prompt-done", promptIndex: pi, prompt, error: err });
    }
  }
  for (const f of files) ctx.emit({ type: "written", file: f });
  const result: BestOfResult | BestOfBatchResult = batch
    ? {
        runs,
        errors,
        outcome: runs.length === 0 ? "failed" : errors.length > 0 || runs.some((r) => r.outcome === "partial") ? "partial" : "complete",
        warnings: x.settingsWarnings,
        model: ctx.model,
        device: ctx.scorer.device,
        timings: { totalMs: performance.now() - x.t0 },
      }
    : runs[0]!;
  if (out) {
    await out.pruneStale();
    result.out = await outputReport(out, files);
    await out.writeResult(serializeResult(result));
  }
  return result;
}

/** What was written, and what the work folder keeps for re-selection. */
async function outputReport(out: OutputDir, files: string[]): Promise<OutputReport> {
  return { dir: out.dir, resultFile: out.resultFile, files, resumed: out.resumedCount, work: await out.workUsage() };
}

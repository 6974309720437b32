/**
 * One prompt of a best-of run: embed the prompt's text once, run one pass (pass.ts) — or, in
 * draft-then-refine, a cheap pass over all N and a full pass over the best k drafts with the same
 * seeds — then rank (rank.ts), select, and say what went wrong (outcome.ts).
 */
import type { GenerationParams } from "@pickrank/contract";
import type { Namer } from "./options.ts";
import { checkSurvivors, describeFailures, groupFailures } from "./outcome.ts";
import { runPass, type PassContext, type PassOutput } from "./pass.ts";
import { rankCandidates, selectTop } from "./rank.ts";
import { kendall, spearman } from "@pickrank/core";
import { scorePromptFor, type ScorePromptOptions } from "./score-prompt.ts";
import type { BestOfResult, FailedCandidate, ModelInfo, RankedCandidate, RefineReport, RunTimings } from "./types.ts";

/** The settings of a run, resolved from BestOfOptions (select.ts). */
export interface PromptRunContext extends PassContext {
  n: number;
  top: number;
  /** Set when the caller accepts partial results (BestOfOptions.minSurvivors). */
  minSurvivors: number | undefined;
  params: GenerationParams;
  /** Draft-then-refine: the drafts' settings and how many to refine. */
  refine: { draftParams: GenerationParams; k: number } | undefined;
  diverseThreshold: number | undefined;
  /** First seed; candidate i gets seed + i. */
  seed: number;
  name: Namer;
  model: ModelInfo;
  /** What the candidates are scored against (score-prompt.ts): the caller's text, the raw prompt, or the prompt without syntax. */
  scorePrompt: ScorePromptOptions;
}

interface Ranked {
  ranked: RankedCandidate[];
  failed: FailedCandidate[];
  refine?: RefineReport;
  timings: Omit<RunTimings, "totalMs">;
}

/**
 * Best-of-N for one prompt.
 * @throws TOO_FEW_CANDIDATES (fewer survivors than minSurvivors, or none), ABORTED, the backend's
 *   error when it returned nothing, the journal's FILESYSTEM / NOT_FOUND errors.
 */
export async function runPrompt(ctx: PromptRunContext, promptIndex: number, prompt: string): Promise<BestOfResult> {
  const t0 = performance.now();
  const seeds = Array.from({ length: ctx.n }, (_, i) => ctx.seed + i);
  const warnings = new Set<string>();
  const pctx: PromptRunContext = {
    ...ctx,
    warn: (w) => {
      // Backends' messages usually name the server already ("comfyui@… is down …"): no second prefix then.
      const who = w.backend && !w.message.startsWith(w.backend) ? `${w.backend}: ` : "";
      const line = `${who}${w.message}${w.code ? ` [${w.code}]` : ""}`;
      if (!warnings.has(line)) ctx.warn({ ...w, message: line });
      warnings.add(line);
    },
  };
  // The text the candidates are scored against: by default the prompt without A1111 / ComfyUI syntax.
  const scorePrompt = scorePromptFor(ctx.scorePrompt, promptIndex, prompt, ctx.scorer.countTokens?.bind(ctx.scorer));
  for (const message of scorePrompt.warnings) pctx.warn({ message });
  const text = await ctx.scorer.embedText(scorePrompt.text);
  const r = ctx.refine
    ? await draftThenRefine(pctx, { pi: promptIndex, prompt, text, seeds, t0 }, ctx.refine)
    : await singlePass(pctx, { pi: promptIndex, prompt, text, seeds, t0 });
  const { top, diverse } = selectTop(r.ranked, ctx.top, ctx.diverseThreshold);
  if (ctx.top > r.ranked.length)
    pctx.warn({ message: `${ctx.name("top")} ${ctx.top} requested but only ${r.ranked.length} candidates survived` });
  const failures = groupFailures(r.failed);
  if (r.failed.length > 0) warnings.add(`${r.failed.length} candidate render(s) failed: ${describeFailures(failures, 4).join("; ")}`);
  const result: BestOfResult = {
    prompt,
    scorePrompt: scorePrompt.text,
    n: ctx.n,
    seeds,
    params: ctx.params,
    best: top[0]!,
    top,
    ranked: r.ranked,
    failed: r.failed,
    failures,
    outcome: r.failed.length > 0 ? "partial" : "complete",
    minSurvivors: ctx.minSurvivors ?? null,
    warnings: [...warnings],
    model: ctx.model,
    device: ctx.scorer.device,
    timings: { totalMs: performance.now() - t0, ...r.timings },
  };
  if (ctx.negativePrompt !== undefined) result.negativePrompt = ctx.negativePrompt;
  if (r.refine) result.refine = r.refine;
  if (diverse) result.diverse = diverse;
  return result;
}

function timingsOf(p: PassOutput): Omit<RunTimings, "totalMs"> {
  return { firstScoredMs: p.firstScoredMs, generateMs: p.generateMs, scoreTailMs: p.scoreTailMs };
}

/** The prompt being run: its index, text, text embedding, seeds and start time. */
interface PromptInput {
  pi: number;
  prompt: string;
  text: Float32Array;
  seeds: number[];
  t0: number;
}

async function singlePass(ctx: PromptRunContext, { pi, prompt, text, seeds, t0 }: PromptInput): Promise<Ranked> {
  const all = seeds.map((_, i) => i);
  const p = await runPass(ctx, { promptIndex: pi, prompt, phase: "final", seeds, indices: all, params: ctx.params, t0 });
  const ranked = rankCandidates(ctx.scorer, text, p.embedded);
  checkSurvivors({
    prompt,
    survived: ranked.length,
    asked: ctx.n,
    min: ctx.minSurvivors ?? 1,
    failed: p.failed,
    phase: "final",
    minName: ctx.name("minSurvivors"),
  });
  return { ranked, failed: p.failed, timings: timingsOf(p) };
}

async function draftThenRefine(
  ctx: PromptRunContext,
  { pi, prompt, text, seeds, t0 }: PromptInput,
  refine: { draftParams: GenerationParams; k: number },
): Promise<Ranked> {
  const min = ctx.minSurvivors ?? 1;
  const d = await runPass(ctx, {
    promptIndex: pi,
    prompt,
    phase: "draft",
    seeds,
    indices: seeds.map((_, i) => i),
    params: refine.draftParams,
    t0,
  });
  const drafts = rankCandidates(ctx.scorer, text, d.embedded);
  checkSurvivors({
    prompt,
    survived: drafts.length,
    asked: ctx.n,
    min,
    failed: d.failed,
    phase: "draft",
    minName: ctx.name("minSurvivors"),
  });
  const k = Math.min(refine.k, drafts.length);
  const chosen = drafts.slice(0, k).map((c) => c.index);
  const f = await runPass(ctx, { promptIndex: pi, prompt, phase: "final", seeds, indices: chosen, params: ctx.params, t0 });
  const ranked = rankCandidates(ctx.scorer, text, f.embedded);
  const failed = [...d.failed, ...f.failed];
  checkSurvivors({
    prompt,
    survived: ranked.length,
    asked: k,
    min: Math.min(min, k),
    failed,
    phase: "final",
    minName: ctx.name("minSurvivors"),
  });
  const byIndex = new Map(drafts.map((c) => [c.index, c]));
  for (const c of ranked) {
    const dc = byIndex.get(c.index)!;
    c.draft = { score: dc.score, prob: dc.prob, rank: dc.rank };
  }
  const timings = { firstScoredMs: d.firstScoredMs, generateMs: d.generateMs + f.generateMs, scoreTailMs: d.scoreTailMs + f.scoreTailMs };
  return { ranked, failed, refine: refineReport(refine, k, drafts, ranked), timings };
}

/** How well the draft scores predicted the final ones, over the candidates that survived both passes. */
function refineReport(
  refine: { draftParams: GenerationParams },
  k: number,
  drafts: RankedCandidate[],
  ranked: RankedCandidate[],
): RefineReport {
  const draftScores = ranked.map((c) => c.draft!.score);
  const finalScores = ranked.map((c) => c.score);
  const draftBest = drafts[0]!;
  const finalOfDraftBest = ranked.find((c) => c.index === draftBest.index);
  return {
    k,
    draftParams: refine.draftParams,
    drafts,
    compared: ranked.length,
    spearman: spearman(draftScores, finalScores),
    kendall: kendall(draftScores, finalScores),
    bestStayedBest: finalOfDraftBest ? finalOfDraftBest.rank === 1 : null,
    draftBestFinalRank: finalOfDraftBest ? finalOfDraftBest.rank : null,
  };
}

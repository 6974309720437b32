/**
 * `summarizeRun`: what selection gains per configuration (best-of-k under the selector and under the
 * judge, gains over a random pick and over the first seed, per category and challenge) and how the
 * configurations compare at equal seeds (win rates, Bradley–Terry). Pure: rows in, JSON-ready object out.
 */
import type { CandidateRow, EvalPrompt } from "../records.ts";
import { type BootstrapOptions, bootstrap, bootstrapOptions, columnMeans, quantileSorted } from "./bootstrap.ts";
import { compareConfigs } from "./compare.ts";
import { RUN_METHODS } from "./methods.ts";
import { bestOfKCurve, selectorPickCurve } from "./order-statistics.ts";
import { indexRun } from "./rows.ts";
import type { ConfigSummary, Curve, GroupSummary, Interval, PromptSummary, RunSummary, ScoreDistribution, ScoreMetrics } from "./types.ts";

/** Options of summarizeRun. */
export interface SummarizeRunOptions {
  /** Bootstrap B (default 2000), confidence (0.95) and seed (0). */
  bootstrap?: Partial<BootstrapOptions>;
  /** Order of the configurations in the summary (default: first appearance in the rows); must name all. */
  configs?: readonly string[];
  /** Bradley–Terry virtual ties per compared pair of configurations (default 1: ½ win each way). */
  priorTies?: number;
}

/**
 * Summarises an evaluation run. `prompts` is the prompt set (ids, categories, challenges); `rows` every
 * scored candidate. Per configuration: the best-of-k curve for k = 1..kMax (kMax = the smallest N of its
 * prompts; each prompt uses its own N in the estimator), the judge's score of the selector's pick among
 * k, gains over a random pick and over seedIndex 0, all as means over prompts with percentile bootstrap
 * intervals; per category and challenge at k = kMax; between configurations, win rates at equal seeds
 * and, for more than two, Bradley–Terry ratings. Methods: RUN_METHODS, repeated in each `method` field.
 * @throws BAD_INPUT for rows that do not fit the prompt set or each other (see indexRun) and bad options.
 */
export function summarizeRun(prompts: readonly EvalPrompt[], rows: readonly CandidateRow[], opts: SummarizeRunOptions = {}): RunSummary {
  const boot = bootstrapOptions(opts.bootstrap);
  const run = indexRun(prompts, rows, opts.configs);
  const notes: string[] = [];
  const configs: ConfigSummary[] = [];
  for (const c of run.configs) {
    const byPrompt = run.byConfig.get(c)!;
    if (byPrompt.size === 0) {
      notes.push(`configuration ${c} has no candidates and is left out`);
      continue;
    }
    configs.push(summarizeConfig(c, byPrompt, boot, notes));
  }
  const missing = [...run.prompts.keys()].filter((id) => run.configs.every((c) => !run.byConfig.get(c)!.has(id)));
  if (missing.length > 0)
    notes.push(`${missing.length} prompt(s) have no candidate in any configuration: ${missing.slice(0, 5).join(", ")}`);
  const kept = configs.map((c) => c.config);
  const compared = compareConfigs(
    kept,
    run.byConfig,
    boot,
    opts.priorTies ?? 1,
    configs.every((c) => c.judge !== null),
  );
  return {
    format: "pickrank-eval-run-summary",
    version: 1,
    bootstrap: { unit: "prompt", resamples: boot.resamples, confidence: boot.confidence, seed: boot.seed, method: RUN_METHODS.bootstrap },
    configs,
    breakdowns: summarizeGroups([...run.prompts.values()], configs, boot),
    winRates: compared.winRates,
    bradleyTerry: compared.bradleyTerry,
    notes: [...notes, ...compared.notes],
  };
}

function summarizeConfig(config: string, byPrompt: Map<string, CandidateRow[]>, boot: BootstrapOptions, notes: string[]): ConfigSummary {
  const all = [...byPrompt.values()].flat();
  const judged = all.filter((r) => r.judgeScore !== null).length;
  const hasJudge = judged === all.length;
  if (judged > 0 && !hasJudge) {
    notes.push(`configuration ${config}: ${all.length - judged} of ${all.length} candidates have no judge score; judge metrics left out`);
  }
  const perPrompt: PromptSummary[] = [];
  for (const [promptId, list] of byPrompt) {
    const scores = list.map((r) => r.score);
    const judge = hasJudge ? list.map((r) => r.judgeScore!) : null;
    const first = list.find((r) => r.seedIndex === 0);
    let pick = list[0]!;
    for (const r of list) if (r.score > pick.score) pick = r;
    perPrompt.push({
      promptId,
      n: list.length,
      bestOfK: bestOfKCurve(scores),
      firstSeed: first ? first.score : null,
      judgeOfPick: judge ? selectorPickCurve(scores, judge) : null,
      judgeFirstSeed: first && hasJudge ? first.judgeScore : null,
      pickSeedIndex: pick.seedIndex,
    });
  }
  const ns = perPrompt.map((p) => p.n);
  const kMax = Math.min(...ns);
  if (kMax < Math.max(...ns)) {
    const short = perPrompt.filter((p) => p.n === kMax).map((p) => p.promptId);
    notes.push(`configuration ${config}: curves stop at k = ${kMax}, the N of ${short.length} prompt(s) (${short.slice(0, 5).join(", ")})`);
  }
  const selector = scoreMetrics(
    "selector",
    all.map((r) => r.score),
    perPrompt.map((p) => p.bestOfK),
    perPrompt.map((p) => p.firstSeed),
    kMax,
    boot,
  );
  const judge = hasJudge
    ? scoreMetrics(
        "judge",
        all.map((r) => r.judgeScore!),
        perPrompt.map((p) => p.judgeOfPick!),
        perPrompt.map((p) => p.judgeFirstSeed),
        kMax,
        boot,
      )
    : null;
  return {
    config,
    prompts: perPrompt.length,
    candidates: all.length,
    candidatesPerPrompt: { min: kMax, max: Math.max(...ns) },
    kMax,
    selector,
    judge,
    perPrompt,
  };
}

function scoreMetrics(
  which: "selector" | "judge",
  scores: number[],
  curves: number[][],
  firsts: (number | null)[],
  kMax: number,
  boot: BootstrapOptions,
): ScoreMetrics {
  const [name, method] = which === "selector" ? ["bestOfK", RUN_METHODS.bestOfK] : ["pickScore", RUN_METHODS.judgeOfPick];
  const cut = curves.map((c) => c.slice(0, kMax));
  const both = bootstrap(cut.length, columnMeans(cut.map((c) => [...c, ...c.map((v) => v - c[0]!)])), boot);
  const withFirst = cut.flatMap((c, i) => (firsts[i] === null ? [] : [c.map((v) => v - firsts[i]!)]));
  const first = withFirst.length > 0 ? bootstrap(withFirst.length, columnMeans(withFirst), boot) : null;
  return {
    distribution: distribution(scores),
    curve: toCurve(`${which}.${name}`, method, cut.length, both, 0, kMax),
    gainOverRandom: toCurve(`${which}.gainOverRandom`, RUN_METHODS.gainOverRandom, cut.length, both, kMax, kMax),
    gainOverFirstSeed: first
      ? toCurve(`${which}.gainOverFirstSeed`, RUN_METHODS.gainOverFirstSeed, withFirst.length, first, 0, kMax)
      : null,
  };
}

function toCurve(metric: string, method: string, prompts: number, r: ReturnType<typeof bootstrap>, offset: number, kMax: number): Curve {
  const points = Array.from({ length: kMax }, (_, i) => ({
    k: i + 1,
    estimate: r.estimate[offset + i]!,
    lo: r.lo[offset + i]!,
    hi: r.hi[offset + i]!,
  }));
  return { metric, method, prompts, points };
}

/** Mean, sample sd and type-7 quartiles of a non-empty list. */
export function distribution(values: readonly number[]): ScoreDistribution {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const mean = s.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(s.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  const q = (p: number) => quantileSorted(s, p);
  return { method: RUN_METHODS.distribution, n, mean, sd, min: s[0]!, q1: q(0.25), median: q(0.5), q3: q(0.75), max: s[n - 1]! };
}

function summarizeGroups(prompts: EvalPrompt[], configs: ConfigSummary[], boot: BootstrapOptions): GroupSummary[] {
  const out: GroupSummary[] = [];
  for (const field of ["category", "challenge"] as const) {
    const values = [...new Set(prompts.map((p) => p[field]).filter((v): v is string => typeof v === "string" && v !== ""))].sort();
    for (const value of values) {
      const ids = new Set(prompts.filter((p) => p[field] === value).map((p) => p.id));
      for (const c of configs) {
        const members = c.perPrompt.filter((p) => ids.has(p.promptId));
        if (members.length > 0) out.push(groupSummary(field, value, c, members, boot));
      }
    }
  }
  return out;
}

function groupSummary(field: GroupSummary["field"], value: string, c: ConfigSummary, members: PromptSummary[], boot: BootstrapOptions) {
  const k = c.kMax;
  const judged = c.judge !== null;
  const rows = members.map((p) => {
    const sel = [p.bestOfK[k - 1]!, p.bestOfK[k - 1]! - p.bestOfK[0]!];
    return judged ? [...sel, p.judgeOfPick![k - 1]!, p.judgeOfPick![k - 1]! - p.judgeOfPick![0]!] : sel;
  });
  const r = bootstrap(rows.length, columnMeans(rows), boot);
  const at = (j: number): Interval => ({ estimate: r.estimate[j]!, lo: r.lo[j]!, hi: r.hi[j]! });
  return {
    field,
    value,
    config: c.config,
    method: RUN_METHODS.group,
    prompts: members.length,
    k,
    selectorBestOfK: at(0),
    selectorGainOverRandom: at(1),
    judgePickScore: judged ? at(2) : null,
    judgeGainOverRandom: judged ? at(3) : null,
  } satisfies GroupSummary;
}

/**
 * The shape of `summarizeRun`'s result: the JSON that `pickrank eval` writes as its summary and the
 * report draws. Every group of numbers names its method in a `method` string; `RUN_METHODS` holds them.
 * Scores are in the model's own units (PickScore: logit_scale · cosine); rates are fractions in [0, 1].
 * A value that cannot be computed (no prompt has a first seed, no pair is shared) is null, never NaN.
 */

/** A point estimate with its percentile bootstrap interval over prompts. */
export interface Interval {
  /** The statistic on the data itself (a mean over prompts, or a pooled rate). */
  estimate: number;
  /** Lower and upper bounds of the interval (see RunSummary.bootstrap for B, level and seed). */
  lo: number;
  hi: number;
}

/** One point of a best-of-k curve: k candidates drawn from each prompt's N. */
export interface CurvePoint extends Interval {
  k: number;
}

/** A curve over k = 1..kMax, averaged over `prompts` prompts. */
export interface Curve {
  /** What is averaged (e.g. "selector.bestOfK", "judge.pickScore", "selector.gainOverFirstSeed"). */
  metric: string;
  method: string;
  /** How many prompts the mean and its interval are over. */
  prompts: number;
  points: CurvePoint[];
}

/** Summary statistics of every candidate's score of one configuration (not per prompt). */
export interface ScoreDistribution {
  method: string;
  n: number;
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator; 0 for one score). */
  sd: number;
  min: number;
  /** Quartiles, linear between order statistics (numpy's default). */
  q1: number;
  median: number;
  q3: number;
  max: number;
}

/** Per-prompt values of one configuration, as the means above average them. */
export interface PromptSummary {
  promptId: string;
  /** Candidates of this prompt (its N). */
  n: number;
  /** E[best selector score of k of N], k = 1..n (element k − 1). */
  bestOfK: number[];
  /** Selector score of seedIndex 0; null when that candidate is missing. */
  firstSeed: number | null;
  /** The judge's expected score of the selector's pick among k, k = 1..n; null without judge scores. */
  judgeOfPick: number[] | null;
  /** Judge score of seedIndex 0; null when missing or without judge scores. */
  judgeFirstSeed: number | null;
  /** seedIndex of the candidate the selector picks among all n (highest score; lowest seedIndex on a tie). */
  pickSeedIndex: number;
}

/** The metrics of one score (selector or judge) for one configuration. */
export interface ScoreMetrics {
  distribution: ScoreDistribution;
  /** Selector: E[best of k]; judge: E[judge score of the selector's pick among k]. */
  curve: Curve;
  /** curve(k) − curve(1) per prompt (curve(1) is a random pick's expected score), then averaged. */
  gainOverRandom: Curve;
  /** curve(k) − the score of seedIndex 0 per prompt, over prompts that have seedIndex 0; null if none has. */
  gainOverFirstSeed: Curve | null;
}

/** Everything measured on one configuration alone. */
export interface ConfigSummary {
  config: string;
  prompts: number;
  candidates: number;
  candidatesPerPrompt: { min: number; max: number };
  /** Curves run to k = the smallest N of any prompt of this configuration. */
  kMax: number;
  selector: ScoreMetrics;
  /** null when the rows carry no judge score, or only some do (RunSummary.notes says which). */
  judge: ScoreMetrics | null;
  perPrompt: PromptSummary[];
}

/** One configuration's numbers at k = kMax over the prompts of one category, challenge or style. */
export interface GroupSummary {
  /** The prompt field grouped by: "category" (PartiPrompts category or HPSv2 style) or "challenge". */
  field: "category" | "challenge";
  value: string;
  config: string;
  method: string;
  prompts: number;
  k: number;
  selectorBestOfK: Interval;
  selectorGainOverRandom: Interval;
  judgePickScore: Interval | null;
  judgeGainOverRandom: Interval | null;
}

/** How often configuration `a` beats `b` at equal seeds (one ordered pair; b over a is also listed). */
export interface WinRate {
  a: string;
  b: string;
  /** Which score decides each comparison. */
  score: "selector" | "judge";
  method: string;
  /** (prompt, seedIndex) pairs both configurations have, and the prompts they come from. */
  pairs: number;
  prompts: number;
  wins: number;
  ties: number;
  losses: number;
  /** (wins + ties/2) / pairs, with its interval over prompts; null when no pair is shared. */
  rate: Interval | null;
}

/** Bradley–Terry ratings of every configuration from the comparisons at equal seeds. */
export interface BradleyTerrySummary {
  score: "selector" | "judge";
  method: string;
  /** Virtual ties added to each compared pair of configurations. */
  priorTies: number;
  iterations: number;
  converged: boolean;
  /**
   * Highest strength first. P(a beats b) = strength_a / (strength_a + strength_b). `logStrengthInterval`:
   * percentile bootstrap over prompts of the refitted log-strength (geometric mean of the strengths 1
   * in every refit, so it measures a configuration against the field).
   */
  ratings: { config: string; strength: number; logStrength: number; logStrengthInterval: { lo: number; hi: number } }[];
}

/** The result of summarizeRun. */
export interface RunSummary {
  format: "pickrank-eval-run-summary";
  version: 1;
  /** The bootstrap behind every interval: resampled unit, B, confidence level, seed and method. */
  bootstrap: { unit: "prompt"; resamples: number; confidence: number; seed: number; method: string };
  /** Configurations in the order given (options.configs) or of first appearance in the rows. */
  configs: ConfigSummary[];
  breakdowns: GroupSummary[];
  /** Every ordered pair of configurations, by selector score and (when all have one) by judge score. */
  winRates: WinRate[];
  /** Present when there are more than two configurations. */
  bradleyTerry: BradleyTerrySummary[];
  /** Things the reader should know: judge scores missing, prompts without candidates. */
  notes: string[];
}

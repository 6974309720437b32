/**
 * `@pickrank/eval`: what `pickrank eval` computes — the rows it stores, the metrics over them (best-of-k,
 * win rates, Bradley–Terry, agreement with human labels) and its report.
 */
export type { CandidateRow, EvalPrompt, PairRow } from "./records.ts";
export { type BootstrapOptions, type BootstrapResult, bootstrap, DEFAULT_BOOTSTRAP, quantileSorted } from "./stats/bootstrap.ts";
export { type BradleyTerryFit, type BradleyTerryOptions, bradleyTerry } from "./stats/bradley-terry.ts";
export { RUN_METHODS } from "./stats/methods.ts";
export { bestOfKCurve, expectedMaxOfK, maxWeights, selectorPickCurve } from "./stats/order-statistics.ts";
export {
  PAIR_METHODS,
  type PairOutcome,
  type PairsSummary,
  PICKAPIC_THRESHOLDS,
  pairLabel,
  pairPoints,
  pairPrediction,
  type SummarizePairsOptions,
  softmaxPair,
  summarizePairs,
} from "./stats/pairs.ts";
export { distribution, type SummarizeRunOptions, summarizeRun } from "./stats/summarize-run.ts";
export type {
  BradleyTerrySummary,
  ConfigSummary,
  Curve,
  CurvePoint,
  GroupSummary,
  Interval,
  PromptSummary,
  RunSummary,
  ScoreDistribution,
  ScoreMetrics,
  WinRate,
} from "./stats/types.ts";
export { imageSrc } from "./report/gallery.ts";
export { formatValue, pointer } from "./report/html.ts";
export { renderReport } from "./report/render.ts";
export type { ReportInput } from "./report/types.ts";

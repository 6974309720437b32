/**
 * `@pickrank/eval`: what `pickrank eval` computes — the rows it stores, the metrics over them (best-of-k,
 * win rates, Bradley–Terry, agreement with human labels) and its report.
 */
export type { CandidateRow, EvalPrompt, PairRow } from "./records.ts";
export { candidateKey, EvalStore, STORE_FILE, type CandidateKey, type CandidateRecord, type StoredCandidate } from "./store.ts";
export {
  BUILTIN_PROMPT_SETS,
  DATA_DIR,
  HPSV2_STYLES,
  loadPromptSet,
  parseHpsv2Json,
  parsePartiTsv,
  parsePromptLines,
  type BuiltinPromptSet,
  type PromptSet,
  type PromptSetOptions,
} from "./prompt-sets.ts";
export {
  candidateImagePath,
  evalRun,
  SEED_SPACE,
  seedsFor,
  type EvalConfig,
  type EvalEvent,
  type EvalFailure,
  type EvalRunOptions,
  type EvalRunReport,
  type EvalScorer,
} from "./run.ts";
export {
  collectHpsv2Folders,
  readImageManifest,
  scoreImages,
  type ImageItem,
  type ScoreImagesOptions,
  type ScoreImagesReport,
} from "./images.ts";
export {
  checkPairsSources,
  readJsonlPairs,
  readParquetPairs,
  scorePairs,
  type PairInput,
  type PairsSource,
  type ScorePairsOptions,
  type ScorePairsReport,
} from "./pairs.ts";
export { CANDIDATE_CSV_COLUMNS, candidatesCsv, OUTPUT_FILES, writeOutput } from "./outputs.ts";
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

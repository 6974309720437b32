import type { Backend, BackendEvent, GenerationParams } from "@pickrank/adapters";
import type { Scorer } from "@pickrank/core";
import type { CandidateMeta, PickrankError } from "@pickrank/contract";
import type { DiverseSkip } from "./diverse.ts";

/** What bestOf needs of a Scorer (a real `Scorer` fits; tests may pass anything of this shape). */
export type SelectorScorer = Pick<Scorer, "device" | "modelDir" | "manifest" | "embedText" | "embedImages" | "scoreEmbeddings"> &
  /** With countTokens, a scoring prompt longer than CLIP reads gets a warning. */
  Partial<Pick<Scorer, "countTokens">>;

export type Phase = "draft" | "final";

export interface RefineOptions {
  /**
   * The cheap first pass: these settings override `params` for the N drafts (fewer steps and/or a
   * smaller size). At least one must be set.
   */
  draft: { steps?: number; width?: number; height?: number; params?: GenerationParams };
  /** How many of the best drafts to render again at full settings with the same seeds; default max(top, min(n, 4)). */
  k?: number;
}

export interface DiverseOptions {
  /** Cosine similarity of image embeddings above which a candidate counts as a near-duplicate (default 0.9). */
  threshold?: number;
}

export interface OutputOptions {
  /** Folder for the PNGs, result.json and the progress journal (created when missing). */
  dir: string;
  /** "top" (default) writes the selected top k; "all" writes every surviving candidate. */
  keep?: "top" | "all";
  /** Re-use candidates a previous run with the same prompt and settings recorded here (default true). */
  resume?: boolean;
  /**
   * Anything else that decides the pixels but that bestOf cannot see (the ComfyUI workflow the backend
   * was built with, a LoRA list …): a resume requires it to match too.
   */
  fingerprint?: Record<string, unknown>;
}

export interface BestOfOptions {
  prompt?: string;
  /** Several prompts share the scorer, the backend and one output folder. */
  prompts?: string[];
  negativePrompt?: string;
  /** Candidates per prompt. */
  n: number;
  backend: Backend;
  scorer: SelectorScorer;
  /** How many to select (default 1); `ranked` always holds every survivor. */
  top?: number;
  /** First seed; candidate i gets seed + i (default: random). */
  seed?: number;
  params?: GenerationParams;
  signal?: AbortSignal;
  onEvent?: (e: BestOfEvent) => void;
  /** Fewer surviving candidates than this fails the prompt with TOO_FEW_CANDIDATES (default 1). */
  minSurvivors?: number;
  /** Largest micro-batch handed to the scorer (default 8). */
  batchSize?: number;
  refine?: RefineOptions;
  diverse?: boolean | DiverseOptions;
  out?: string | OutputOptions;
  /**
   * The text PickScore scores the candidates against. Default: the prompt with its A1111 / ComfyUI
   * syntax removed (weights, `<lora:…>` tags, prompt editing, BREAK …: see `scoringPrompt`). One
   * string for `prompt`, or one per entry of `prompts`. Changing it never re-renders (a resumed run
   * re-scores).
   */
  scorePrompt?: string | string[];
  /** Score against the prompt exactly as written (CLI --score-raw-prompt); not with scorePrompt. */
  scoreRawPrompt?: boolean;
}

export interface CandidateTimings {
  queuedMs: number;
  renderMs: number;
  totalMs: number;
}

export interface RankedCandidate {
  /** 0..n-1: position in the request (seed = seeds[index]). */
  index: number;
  seed: number;
  score: number;
  prob: number;
  rank: number;
  backend: string;
  format: "png" | "jpeg" | "webp";
  image: Buffer;
  /** L2-normalized PickScore image embedding (left out of JSON). */
  embedding: Float32Array;
  timings: CandidateTimings;
  /** True when the image came from the progress journal of an earlier run instead of the backend. */
  reused: boolean;
  /** Where it was written, when an output folder was given and it was kept. */
  file?: string;
  /** Its draft scores, in draft-then-refine mode. */
  draft?: { score: number; prob: number; rank: number };
  /**
   * What the backend said about how it was made (the settings it rendered with, A1111's infotext,
   * the ComfyUI prompt sent). result.json carries it without `comfyPrompt` (that goes into the kept
   * PNGs' `prompt` chunk and the journal).
   */
  meta?: CandidateMeta;
}

export interface FailedCandidate {
  index: number;
  seed: number;
  backend: string;
  phase: Phase;
  error: PickrankError;
}

export interface RefineReport {
  k: number;
  draftParams: GenerationParams;
  /** Every draft, best first (images included). */
  drafts: RankedCandidate[];
  /** Items that survived both passes. */
  compared: number;
  /** Rank agreement between draft and final scores of the refined set (null when undefined: < 2 items or constant scores). */
  spearman: number | null;
  kendall: number | null;
  /** Whether the draft's best is also the best after refining (null when it failed to re-render). */
  bestStayedBest: boolean | null;
  draftBestFinalRank: number | null;
}

export interface BestOfResult {
  prompt: string;
  /** The text PickScore scored against (see BestOfOptions.scorePrompt). */
  scorePrompt: string;
  negativePrompt?: string;
  n: number;
  seeds: number[];
  params: GenerationParams;
  best: RankedCandidate;
  /** The selection: k best (diverse when asked), best first. */
  top: RankedCandidate[];
  /** Every surviving candidate of the final pass, best first. */
  ranked: RankedCandidate[];
  failed: FailedCandidate[];
  warnings: string[];
  model: ModelInfo;
  device: string;
  refine?: RefineReport;
  diverse?: { threshold: number; skipped: DiverseSkip[] };
  timings: RunTimings;
  /** With `out` and a single prompt: what was written. */
  out?: OutputReport;
}

export interface ModelInfo {
  dir: string;
  repo?: string;
  revision?: string;
  dtype: string;
}

export interface RunTimings {
  totalMs: number;
  /** From start until the first candidate was scored (scoring overlaps generation). */
  firstScoredMs: number | null;
  /** From start until the backend finished. */
  generateMs: number;
  /** Scoring left after the backend finished (small when scoring keeps up). */
  scoreTailMs: number;
}

export interface PromptError {
  promptIndex: number;
  prompt: string;
  error: PickrankError;
}

export interface BestOfBatchResult {
  runs: BestOfResult[];
  /** Prompts that failed (too few survivors, backend errors); the others still ran. */
  errors: PromptError[];
  model: ModelInfo;
  device: string;
  out?: OutputReport;
  timings: { totalMs: number };
}

export interface OutputReport {
  dir: string;
  resultFile: string;
  files: string[];
  /** Candidates taken from the progress journal instead of rendered again. */
  resumed: number;
  /**
   * The rendered candidates kept in `<dir>/.pickrank/work` (every one, whatever `keep` says) so a
   * re-run with another top, keep or diverse re-selects without rendering (see OutputDir.workUsage).
   */
  work: WorkUsage;
}

/** The candidates' bytes under `<out>/.pickrank/work`. */
export interface WorkUsage {
  dir: string;
  /** Candidate image files. */
  files: number;
  bytes: number;
}

export type BestOfEvent =
  | { type: "prompt-start"; promptIndex: number; prompt: string; phase: Phase; n: number; reused: number }
  | { type: "backend"; promptIndex: number; phase: Phase; event: BackendEvent }
  | { type: "rendered"; promptIndex: number; phase: Phase; index: number; seed: number; backend: string; reused: boolean; rendered: number; total: number }
  | { type: "scored"; promptIndex: number; phase: Phase; index: number; seed: number; backend: string; scored: number; total: number }
  | { type: "failed"; promptIndex: number; phase: Phase; index: number; seed: number; backend: string; error: PickrankError }
  | { type: "prompt-done"; promptIndex: number; prompt: string; best?: { index: number; seed: number; score: number }; error?: PickrankError }
  | { type: "written"; file: string };

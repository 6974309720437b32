import type {
  Backend,
  BackendEvent,
  CandidateMeta,
  CandidateTimings,
  ErrorCode,
  FailedCandidate as ContractFailedCandidate,
  GenerationParams,
  PickrankError,
} from "@pickrank/contract";
import type { Scorer } from "@pickrank/core";
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
   * Anything else that decides the pixels that neither the options nor `backend.fingerprint()` show
   * (a LoRA list applied outside the workflow …): a resume requires it to match too. The backend's
   * own fingerprint (its ComfyUI workflow, A1111 extra fields) is always part of the resume check.
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
  /**
   * Accept a partial run: with at least this many survivors a prompt whose other candidates failed
   * still counts as done (the CLI exits 0; `outcome` stays "partial"); fewer fail the prompt with
   * TOO_FEW_CANDIDATES. Unset: any survivor makes a result, and failures make it "partial" (CLI exit 3).
   */
  minSurvivors?: number;
  /** Largest micro-batch handed to the scorer (default 8). */
  batchSize?: number;
  refine?: RefineOptions;
  diverse?: boolean | DiverseOptions;
  out?: string | OutputOptions;
  /**
   * How messages name the options, by API path ("minSurvivors", "refine.k", "out"): the CLI passes
   * its flags ({ minSurvivors: "--min", out: "--out" }) so errors and warnings name what its user typed.
   * Default: the API names.
   */
  optionNames?: OptionNames;
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

/** API option path → the name messages use for it (a CLI flag). */
export type OptionNames = Readonly<Record<string, string>>;

export type { CandidateTimings } from "@pickrank/contract";

export interface RankedCandidate {
  /** The candidate's name in the backend request (GenerateRequest.keys): String(index). */
  key: string;
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

/** The contract's FailedCandidate (key, seed, backend, error) with its pass and its position in the request. */
export interface FailedCandidate extends ContractFailedCandidate {
  phase: Phase;
  /** 0..n-1: position in the request (key = String(index)). */
  index: number;
}

/** Failed candidates that share one cause, for a summary instead of one line per candidate. */
export interface FailureGroup {
  phase: Phase;
  code: ErrorCode;
  /** The first failure's message (the others differ at most in the seed or the server's prompt id). */
  message: string;
  count: number;
  seeds: number[];
}

/** "complete": every candidate asked for was rendered and scored; "partial": some failed (see failed). */
export type Outcome = "complete" | "partial";

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
  /** `failed` grouped by cause (phase, code, message), largest group first. */
  failures: FailureGroup[];
  /** "partial" when any candidate failed (even when `minSurvivors` accepted it). */
  outcome: Outcome;
  /** The minSurvivors the run was given, when it accepted a partial result; null otherwise. */
  minSurvivors: number | null;
  /** What the user should know: the backend's warning events, settings that do nothing, failures. */
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
  /** "partial" when a prompt failed or a run is partial; "failed" when no prompt made a result. */
  outcome: Outcome | "failed";
  /** Settings that do nothing or defeat their purpose (each run's own warnings are in runs[i].warnings). */
  warnings: string[];
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
  | {
      type: "rendered";
      promptIndex: number;
      phase: Phase;
      key: string;
      index: number;
      seed: number;
      backend: string;
      reused: boolean;
      rendered: number;
      total: number;
    }
  | {
      type: "scored";
      promptIndex: number;
      phase: Phase;
      key: string;
      index: number;
      seed: number;
      backend: string;
      scored: number;
      total: number;
    }
  | { type: "failed"; promptIndex: number; phase: Phase; key: string; index: number; seed: number; backend: string; error: PickrankError }
  /** Something the user should know that does not stop the run (a backend's warning event, a setting that does nothing). */
  | { type: "warning"; promptIndex?: number; message: string; code?: string; backend?: string }
  | {
      type: "prompt-done";
      promptIndex: number;
      prompt: string;
      best?: { index: number; seed: number; score: number };
      error?: PickrankError;
    }
  | { type: "written"; file: string };

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

/** The pass a candidate belongs to: "draft" (the cheap first pass of draft-then-refine) or "final" (full settings; the only pass without refine). */
export type Phase = "draft" | "final";

/** Draft-then-refine: render n cheap drafts, then re-render the best `k` at full settings with the same seeds. */
export interface RefineOptions {
  /**
   * The cheap first pass: these settings override `params` for the N drafts (fewer steps and/or a
   * smaller size). At least one must be set.
   */
  draft: { steps?: number; width?: number; height?: number; params?: GenerationParams };
  /** How many of the best drafts to render again at full settings with the same seeds; default max(top, min(n, 4)). */
  k?: number;
}

/** Diverse selection: skip near-duplicates (by image-embedding cosine) when picking the top k. */
export interface DiverseOptions {
  /** Cosine similarity of image embeddings above which a candidate counts as a near-duplicate (default 0.9). */
  threshold?: number;
}

/**
 * Where and how bestOf writes its results: the kept images, result.json and the progress journal
 * (`<dir>/.pickrank/journal.jsonl`) that lets an interrupted run resume.
 */
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

/**
 * Options of bestOf: render `n` candidates per prompt on `backend`, score them with PickScore
 * (`scorer`) and select the best `top`. Invalid values throw BAD_INPUT; too few survivors, TOO_FEW_CANDIDATES.
 */
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

/**
 * A rendered and scored candidate. `score` is its PickScore (exp(logit_scale) times the cosine of
 * the L2-normalized text and image embeddings), `prob` the softmax of the scores over the pass's
 * surviving candidates of the prompt, `rank` its 1-based place among them (1 = best).
 */
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

/**
 * What draft-then-refine did: the drafts, and how well draft scores predicted the final ones
 * (Spearman and Kendall rank correlation over the refined set, each in [-1, 1]).
 */
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

/**
 * The result of one prompt: every surviving candidate ranked best first, the selected top, the
 * failures and their grouping, warnings, the model and device used, and timings in ms.
 */
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

/** The PickScore model a run scored with: its folder, hub repo and revision when known, and weight dtype. */
export interface ModelInfo {
  dir: string;
  repo?: string;
  revision?: string;
  dtype: string;
}

/** Where one prompt's run time went, in milliseconds (from performance.now()). */
export interface RunTimings {
  totalMs: number;
  /** From start until the first candidate was scored (scoring overlaps generation). */
  firstScoredMs: number | null;
  /** From start until the backend finished. */
  generateMs: number;
  /** Scoring left after the backend finished (small when scoring keeps up). */
  scoreTailMs: number;
}

/** A prompt of a batch that failed (its 0-based index in `prompts`, the text, the PickrankError). */
export interface PromptError {
  promptIndex: number;
  prompt: string;
  error: PickrankError;
}

/**
 * The result of bestOf over several prompts: one BestOfResult per prompt that succeeded, and a
 * PromptError per prompt that failed.
 */
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

/**
 * What bestOf wrote to the output folder: the result.json path, the kept image files (paths), how many
 * candidates were resumed from the journal, and the work folder's usage.
 */
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

/**
 * Progress events of bestOf (BestOfOptions.onEvent), in the order they happen: a prompt starts, the
 * backend's own events, each candidate rendered, scored or failed, warnings, a prompt done, a file written.
 * `promptIndex` is 0-based; `index` is the candidate's 0..n-1 position.
 */
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

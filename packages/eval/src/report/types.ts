import type { CandidateRow, EvalPrompt } from "../records.ts";
import type { PairsSummary } from "../stats/pairs.ts";
import type { RunSummary } from "../stats/types.ts";

/**
 * What renderReport draws. Give `run` (summarizeRun's result), `pairs` (summarizePairs'), or both.
 * The gallery needs `prompts` (for the text) and `rows` (for the images); without rows it is left out.
 */
export interface ReportInput {
  /** Heading and `<title>` (default "pickrank eval"). */
  title?: string;
  /** Free text shown under the heading (e.g. the command line and the date), escaped. */
  subtitle?: string;
  run?: RunSummary | null;
  pairs?: PairsSummary | null;
  /** The prompt set, for the gallery's prompt text. */
  prompts?: readonly EvalPrompt[];
  /** The candidates, for the gallery: each prompt's pick beside the other candidates, per configuration. */
  rows?: readonly CandidateRow[];
  /**
   * Image sources for the gallery, keyed by `CandidateRow.image`: a path relative to the folder the
   * report is written to, an absolute file path, or a `data:image/…` URI. A row without an entry uses
   * its `image` as the path. Network URLs (http:, https:, //host) are refused, so the report stays offline.
   */
  images?: Readonly<Record<string, string>>;
  /** At most this many prompts in the gallery, in prompt-set order (default: all). */
  galleryPrompts?: number;
}

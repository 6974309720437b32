/**
 * The evaluation's files besides the database: the candidates as CSV, and any text output (summary
 * JSON, report HTML) written atomically, so a reader never sees half a file.
 */
import path from "node:path";
import { writeFileAtomic } from "@pickrank/contract";
import type { EvalPrompt } from "./records.ts";
import type { CandidateRecord } from "./store.ts";

/** File names inside an evaluation folder. */
export const OUTPUT_FILES = { summary: "summary.json", candidates: "candidates.csv", report: "report.html" } as const;

/** The columns of candidates.csv, in order. */
export const CANDIDATE_CSV_COLUMNS = [
  "config",
  "prompt_id",
  "category",
  "challenge",
  "prompt",
  "seed_index",
  "seed",
  "score",
  "judge_score",
  "image",
  "backend",
  "render_ms",
] as const;

/**
 * candidates.csv (RFC 4180, header first): one row per stored candidate, scores as stored (full
 * precision, empty when missing), prompts joined by id.
 */
export async function candidatesCsv(rows: readonly CandidateRecord[], prompts: readonly EvalPrompt[]): Promise<string> {
  const { stringify } = await import("csv-stringify/sync");
  const byId = new Map(prompts.map((p) => [p.id, p]));
  const cell = (v: string | number | null | undefined): string => (v === null || v === undefined ? "" : String(v));
  const records = rows.map((r) => {
    const p = byId.get(r.promptId);
    return [
      r.config,
      r.promptId,
      p?.category,
      p?.challenge,
      p?.text,
      r.seedIndex,
      r.seed,
      r.score,
      r.judgeScore,
      r.image,
      r.backend,
      r.renderMs,
    ].map(cell);
  });
  return stringify(records, { header: true, columns: [...CANDIDATE_CSV_COLUMNS] });
}

/**
 * Writes `text` to `dir/name` atomically (temp file, fsync, rename).
 * @throws FILESYSTEM / NOT_FOUND naming the path and `option`.
 */
export async function writeOutput(dir: string, name: string, text: string, option = "--out"): Promise<string> {
  const file = path.join(dir, name);
  await writeFileAtomic(file, text, option);
  return file;
}

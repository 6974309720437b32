/**
 * Checks the rows `summarizeRun` is given and groups them: configuration → prompt → candidates
 * ordered by seedIndex. Rows are the store's (records.ts); a row that cannot be summarised is an
 * input error, never skipped silently.
 */
import { invalidParameter } from "@pickrank/contract";
import type { CandidateRow, EvalPrompt } from "../records.ts";

/** Rows grouped for the metrics. */
export interface IndexedRun {
  /** Configuration names in summary order. */
  configs: string[];
  /** config → promptId → candidates (ascending seedIndex), prompts in prompt-set order. */
  byConfig: Map<string, Map<string, CandidateRow[]>>;
  prompts: Map<string, EvalPrompt>;
}

/**
 * Validates and groups rows.
 * @throws BAD_INPUT for a duplicate prompt id, a row whose promptId is not in the prompt set, a
 * non-integer or negative seedIndex, a non-finite score or judge score, a (config, promptId, seedIndex)
 * given twice, or an `order` that misses a configuration of the rows.
 */
export function indexRun(prompts: readonly EvalPrompt[], rows: readonly CandidateRow[], order?: readonly string[]): IndexedRun {
  const promptMap = new Map<string, EvalPrompt>();
  for (const p of prompts) {
    if (promptMap.has(p.id)) throw invalidParameter("prompts", "unique prompt ids", p.id);
    promptMap.set(p.id, p);
  }
  const grouped = new Map<string, Map<string, CandidateRow[]>>();
  const seen = new Set<string>();
  for (const r of rows) {
    checkRow(r, promptMap);
    const key = JSON.stringify([r.config, r.promptId, r.seedIndex]);
    if (seen.has(key)) {
      throw invalidParameter("rows", "one row per (config, promptId, seedIndex)", `${r.config} / ${r.promptId} / ${r.seedIndex}`);
    }
    seen.add(key);
    let byPrompt = grouped.get(r.config);
    if (!byPrompt) grouped.set(r.config, (byPrompt = new Map()));
    const list = byPrompt.get(r.promptId) ?? [];
    list.push(r);
    byPrompt.set(r.promptId, list);
  }
  const configs = order ? [...order] : [...grouped.keys()];
  for (const c of grouped.keys()) {
    if (!configs.includes(c)) throw invalidParameter("configs", `a list naming every configuration of the rows`, c);
  }
  const byConfig = new Map<string, Map<string, CandidateRow[]>>();
  for (const c of configs) {
    const byPrompt = grouped.get(c) ?? new Map<string, CandidateRow[]>();
    const ordered = new Map<string, CandidateRow[]>();
    for (const id of promptMap.keys()) {
      const list = byPrompt.get(id);
      if (list)
        ordered.set(
          id,
          list.sort((a, b) => a.seedIndex - b.seedIndex),
        );
    }
    byConfig.set(c, ordered);
  }
  return { configs, byConfig, prompts: promptMap };
}

function checkRow(r: CandidateRow, prompts: Map<string, EvalPrompt>): void {
  if (!prompts.has(r.promptId)) throw invalidParameter("row.promptId", "the id of a prompt of the prompt set", r.promptId);
  if (!Number.isInteger(r.seedIndex) || r.seedIndex < 0) throw invalidParameter("row.seedIndex", "integer ≥ 0", r.seedIndex);
  if (!Number.isFinite(r.score)) throw invalidParameter("row.score", "a finite number", r.score);
  if (r.judgeScore !== null && !Number.isFinite(r.judgeScore)) {
    throw invalidParameter("row.judgeScore", "a finite number or null", r.judgeScore);
  }
}

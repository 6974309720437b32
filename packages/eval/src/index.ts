/**
 * `@pickrank/eval`: what `pickrank eval` computes — the rows it stores, the metrics over them (best-of-k,
 * win rates, Bradley–Terry, agreement with human labels) and its report.
 */
export type { CandidateRow, EvalPrompt, PairRow } from "./records.ts";

/**
 * How scores and probabilities are written for people: the CLI's tables and the A1111 infotext of
 * the saved PNGs use these, so the numbers a user sees in the table are the ones "PNG info" shows.
 * result.json and the `pickrank` PNG chunk keep the full float.
 */

/** A PickScore score (≈ 15–25 for real images; exp(logit_scale)·cosine) with 3 decimals; NaN/±Infinity as written by String(). */
export function formatScore(score: number): string {
  return Number.isFinite(score) ? score.toFixed(3) : String(score);
}

/** A softmax probability over one prompt's candidates (0–1) with 4 decimals; NaN as "NaN". */
export function formatProb(prob: number): string {
  return Number.isFinite(prob) ? prob.toFixed(4) : String(prob);
}

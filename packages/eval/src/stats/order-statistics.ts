/**
 * Exact best-of-k from the N scores of one prompt, by order statistics (no sampling).
 *
 * Draw k of the N candidates uniformly without replacement. With the scores sorted ascending,
 * s_(1) ≤ … ≤ s_(N), the i-th smallest is the best of the draw exactly when it is drawn and the other
 * k − 1 come from the i − 1 below it, so
 *
 *   E[max of k] = Σ_{i=k..N} s_(i) · C(i−1, k−1) / C(N, k)
 *
 * (the estimator behind pass@k, Chen et al. 2021, applied to a score instead of a pass/fail). The
 * weights are computed as a product of ratios, never as binomials: w_N = k/N and
 * w_{i−1} = w_i · (i − k)/(i − 1), every factor in [0, 1], so nothing overflows for any N.
 * Equal scores need no rule here: whichever of two equal scores counts as the larger, the maximum is the same.
 */
import { invalidParameter } from "@pickrank/contract";

/**
 * The order-statistics weights for the best of k among n: `w[i]` (0-based, ascending order) is the
 * probability that the (i+1)-th smallest of n is the largest of a uniformly drawn k-subset,
 * C(i, k−1)/C(n, k). Zero below index k − 1; the weights sum to 1.
 * @throws BAD_INPUT when n or k is not an integer with 1 ≤ k ≤ n.
 */
export function maxWeights(n: number, k: number): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw invalidParameter("n", "integer ≥ 1", n);
  if (!Number.isInteger(k) || k < 1 || k > n) throw invalidParameter("k", `integer from 1 to ${n}`, k);
  const w = new Float64Array(n);
  // 1-based i from n down to k: w_n = k/n, w_{i-1} = w_i · (i − k)/(i − 1).
  let wi = k / n;
  for (let i = n; i >= k; i--) {
    w[i - 1] = wi;
    wi = i > 1 ? (wi * (i - k)) / (i - 1) : 0;
  }
  return w;
}

/** Ascending copy of finite scores, validated (BAD_INPUT names `name` for a non-finite value). */
function sortedAscending(scores: readonly number[], name: string): number[] {
  for (const s of scores) if (!Number.isFinite(s)) throw invalidParameter(name, "finite numbers", s);
  return [...scores].sort((a, b) => a - b);
}

/**
 * E[max score among k of the N scores drawn without replacement], exactly (see the module comment).
 * @throws BAD_INPUT for an empty list, a non-finite score, or k outside 1..N.
 */
export function expectedMaxOfK(scores: readonly number[], k: number): number {
  if (scores.length === 0) throw invalidParameter("scores", "at least one score", scores);
  const sorted = sortedAscending(scores, "scores");
  const w = maxWeights(sorted.length, k);
  let sum = 0;
  for (let i = k - 1; i < sorted.length; i++) sum += w[i]! * sorted[i]!;
  return sum;
}

/**
 * The best-of-k curve of one prompt: element k − 1 is E[max of k of N] for k = 1..N. Element 0 is the
 * mean score (a random pick), element N − 1 the maximum.
 * @throws BAD_INPUT for an empty list or a non-finite score.
 */
export function bestOfKCurve(scores: readonly number[]): number[] {
  if (scores.length === 0) throw invalidParameter("scores", "at least one score", scores);
  const sorted = sortedAscending(scores, "scores");
  const n = sorted.length;
  const curve: number[] = [];
  for (let k = 1; k <= n; k++) {
    const w = maxWeights(n, k);
    let sum = 0;
    for (let i = k - 1; i < n; i++) sum += w[i]! * sorted[i]!;
    curve.push(sum);
  }
  return curve;
}

/**
 * The judge's expected score of the selector's pick among k, for k = 1..N (element k − 1).
 *
 * The pick of a k-subset is its candidate with the highest selector score; its judge score is
 * averaged over all C(N, k) subsets. Ties: among candidates of equal selector score the pick is
 * drawn uniformly at random (the same as ordering the candidates by selector score with a uniformly
 * random order inside each group of equal scores). Order statistics give it exactly: sort by selector
 * score ascending and give the i-th position the weight C(i−1, k−1)/C(N, k); a group of equal
 * selector scores spreads the sum of its positions' weights evenly over its members, so each member's
 * judge score counts with the group's mean weight. With distinct selector scores this is
 * Σ_i judge_(i) · C(i−1, k−1)/C(N, k), judge scores ordered by selector score.
 * @throws BAD_INPUT when the two lists differ in length, are empty, or hold a non-finite value.
 */
export function selectorPickCurve(selector: readonly number[], judge: readonly number[]): number[] {
  const n = selector.length;
  if (n === 0) throw invalidParameter("selector", "at least one score", selector);
  if (judge.length !== n) throw invalidParameter("judge", `${n} scores (one per selector score)`, judge.length);
  for (const s of selector) if (!Number.isFinite(s)) throw invalidParameter("selector", "finite numbers", s);
  for (const s of judge) if (!Number.isFinite(s)) throw invalidParameter("judge", "finite numbers", s);
  const order = Array.from(selector, (_, i) => i).sort((a, b) => selector[a]! - selector[b]!);
  // Groups of equal selector scores as [start, end) ranges of `order`, each with its judge mean.
  const groups: { start: number; end: number; judgeMean: number }[] = [];
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && selector[order[end]!] === selector[order[start]!]) end++;
    let sum = 0;
    for (let i = start; i < end; i++) sum += judge[order[i]!]!;
    groups.push({ start, end, judgeMean: sum / (end - start) });
    start = end;
  }
  const curve: number[] = [];
  for (let k = 1; k <= n; k++) {
    const w = maxWeights(n, k);
    let sum = 0;
    for (const g of groups) {
      let gw = 0;
      for (let i = g.start; i < g.end; i++) gw += w[i]!;
      sum += gw * g.judgeMean;
    }
    curve.push(sum);
  }
  return curve;
}

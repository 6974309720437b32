/**
 * Agreement of a scorer with Pick-a-Pic-format human labels, two ways, both labelled.
 *
 * 1. The Pick-a-Pic paper's tie protocol (Kirstain et al. 2023, "Pick-a-Pic: An Open Dataset of User
 *    Preferences for Text-to-Image Generation", arXiv:2305.01569): PickScore ≈ 70 % on the test set
 *    against 68.0 % for human experts (70.2 % on the dataset card's leaderboard, 70.5 % in the paper's
 *    summaries). The paper says ties are predicted below a probability-difference threshold tuned on
 *    the validation split; the exact rule is spelled out in the authors' evaluation script,
 *    github.com/yuvalkirstain/PickScore trainer/scripts/eval_preference_predictor.py (commit f79607f),
 *    which this module ports:
 *    - p0, p1 = softmax of the two images' scores for the caption;
 *    - label: tie when label_0 = 0.5, image 0 when label_0 = 1, else image 1;
 *    - prediction: tie when |p1 − p0| ≤ t, else the image with the higher probability;
 *    - score of a pair: 1 when prediction = label; ½ when exactly one of them is a tie (a predicted
 *      tie on a decided pair, or a decided prediction on a tied pair); 0 when both pick an image and
 *      disagree;
 *    - accuracy = mean score; t = the value of the grid {0, 0.1, …, 1} with the highest accuracy on
 *      the validation split (the first such value, as numpy's argmax), then accuracy on the test split
 *      at that t. (The script uses the 500-pair validation_unique and test_unique splits.)
 * 2. Ties dropped: pairs labelled as ties are removed; the scorer never predicts a tie (the higher
 *    score wins; equal scores count ½). The number most other reports give.
 */
import { PickrankError, invalidParameter } from "@pickrank/contract";
import type { PairRow } from "../records.ts";
import { type BootstrapOptions, bootstrap, bootstrapOptions, columnMeans } from "./bootstrap.ts";
import type { Interval } from "./types.ts";

/** The authors' threshold grid: 0, 0.1, …, 1. */
export const PICKAPIC_THRESHOLDS: readonly number[] = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];

export const PAIR_METHODS = {
  tieProtocol:
    "Pick-a-Pic paper's protocol (authors' eval_preference_predictor.py): p = softmax of the two scores; tie predicted when " +
    "|p0 − p1| ≤ t; 1 point when prediction and label agree, ½ when exactly one of them is a tie, 0 otherwise; t = the grid " +
    "value with the highest validation accuracy (first on equal accuracy); accuracy on the test split",
  tiesDropped:
    "pairs labelled as ties removed; the image with the higher score is the prediction (equal scores ½); accuracy on the test split",
  interval: "percentile bootstrap over pairs of the test split (pure-rand xoroshiro128+ from the seed)",
} as const;

/** Options of summarizePairs. */
export interface SummarizePairsOptions {
  /** Tie thresholds tried on the validation split (default PICKAPIC_THRESHOLDS). */
  thresholds?: readonly number[];
  /** A fixed tie threshold instead of choosing one on the validation split (then no validation is needed). */
  tieThreshold?: number;
  /** Bootstrap of the accuracies' intervals over test pairs (default 2000 resamples, 0.95, seed 0). */
  bootstrap?: Partial<BootstrapOptions>;
}

/** Label or prediction of one pair. */
export type PairOutcome = "0" | "1" | "tie";

/** The result of summarizePairs. */
export interface PairsSummary {
  format: "pickrank-eval-pairs-summary";
  version: 1;
  pairs: { total: number; validation: number; test: number; testTies: number; validationTies: number };
  tieProtocol: {
    method: string;
    /** The threshold used, and whether it was chosen on the validation split or given. */
    threshold: number;
    thresholdFrom: "validation" | "given";
    /** Validation accuracy per threshold tried (empty when the threshold was given). */
    sweep: { threshold: number; accuracy: number }[];
    /** Test pairs predicted as ties at the threshold. */
    predictedTies: number;
    /** Accuracy on the test split; null without test pairs. */
    accuracy: Interval | null;
  };
  tiesDropped: { method: string; pairs: number; accuracy: Interval | null };
  intervalMethod: string;
  bootstrap: { unit: "pair"; resamples: number; confidence: number; seed: number };
}

/** Probability of image 0 of the two-way softmax of the scores: 1 / (1 + e^(s1 − s0)). */
export function softmaxPair(score0: number, score1: number): [number, number] {
  const p0 = 1 / (1 + Math.exp(score1 - score0));
  return [p0, 1 - p0];
}

/** The label of a pair, checked: (1, 0) → "0", (0, 1) → "1", (0.5, 0.5) → "tie". @throws BAD_INPUT otherwise. */
export function pairLabel(r: PairRow): PairOutcome {
  if (r.label0 === 0.5 && r.label1 === 0.5) return "tie";
  if (r.label0 === 1 && r.label1 === 0) return "0";
  if (r.label0 === 0 && r.label1 === 1) return "1";
  throw invalidParameter(`labels of pair ${r.id}`, "(1, 0), (0, 1) or (0.5, 0.5)", `(${r.label0}, ${r.label1})`);
}

/** The prediction at tie threshold t: tie when |p1 − p0| ≤ t, else the more probable image. */
export function pairPrediction(score0: number, score1: number, t: number): PairOutcome {
  const [p0, p1] = softmaxPair(score0, score1);
  if (Math.abs(p1 - p0) <= t) return "tie";
  return p0 > p1 ? "0" : "1";
}

/** The protocol's points for one pair: 1 agree, ½ when exactly one side is a tie, 0 otherwise. */
export function pairPoints(label: PairOutcome, pred: PairOutcome): number {
  if (label === pred) return 1;
  return label === "tie" || pred === "tie" ? 0.5 : 0;
}

function accuracyAt(rows: readonly PairRow[], labels: readonly PairOutcome[], t: number): number {
  let s = 0;
  rows.forEach((r, i) => (s += pairPoints(labels[i]!, pairPrediction(r.score0, r.score1, t))));
  return s / rows.length;
}

function meanInterval(points: number[], boot: BootstrapOptions): Interval | null {
  if (points.length === 0) return null;
  const r = bootstrap(points.length, columnMeans(points.map((p) => [p])), boot);
  return { estimate: r.estimate[0]!, lo: r.lo[0]!, hi: r.hi[0]! };
}

/**
 * Accuracy of the scores against the human labels by the paper's tie protocol and with ties dropped
 * (see the module comment), with the counts and the threshold.
 * @throws BAD_INPUT for labels other than (1,0), (0,1), (0.5,0.5), non-finite scores, a threshold
 * outside [0, 1], or no validation pairs when no `tieThreshold` is given.
 */
export function summarizePairs(rows: readonly PairRow[], opts: SummarizePairsOptions = {}): PairsSummary {
  const boot = bootstrapOptions(opts.bootstrap);
  for (const r of rows) {
    if (!Number.isFinite(r.score0) || !Number.isFinite(r.score1))
      throw invalidParameter(`scores of pair ${r.id}`, "finite numbers", r.score0);
  }
  const val = rows.filter((r) => r.split === "validation");
  const test = rows.filter((r) => r.split === "test");
  const valLabels = val.map(pairLabel);
  const testLabels = test.map(pairLabel);
  const grid = opts.thresholds ?? PICKAPIC_THRESHOLDS;
  for (const t of [...grid, ...(opts.tieThreshold === undefined ? [] : [opts.tieThreshold])]) {
    if (!(t >= 0 && t <= 1)) throw invalidParameter("tie threshold", "number in [0, 1]", t);
  }
  let threshold: number;
  let sweep: { threshold: number; accuracy: number }[] = [];
  if (opts.tieThreshold !== undefined) threshold = opts.tieThreshold;
  else {
    if (val.length === 0)
      throw new PickrankError(
        "BAD_INPUT",
        'Expected pairs of split "validation" to choose the tie threshold on (pickrank eval pairs --validation <file>), ' +
          "or a fixed tieThreshold (--tie-threshold <t>), but none of the pairs is a validation pair",
        { details: { parameter: "tieThreshold" } },
      );
    if (grid.length === 0) throw invalidParameter("thresholds", "at least one threshold", grid);
    sweep = grid.map((t) => ({ threshold: t, accuracy: accuracyAt(val, valLabels, t) }));
    threshold = sweep.reduce((best, s) => (s.accuracy > best.accuracy ? s : best)).threshold;
  }
  const preds = test.map((r) => pairPrediction(r.score0, r.score1, threshold));
  const protocolPoints = test.map((_, i) => pairPoints(testLabels[i]!, preds[i]!));
  const decided = test.filter((_, i) => testLabels[i] !== "tie");
  const droppedPoints = decided.map((r) => {
    const label = pairLabel(r);
    if (r.score0 === r.score1) return 0.5;
    return (r.score0 > r.score1 ? "0" : "1") === label ? 1 : 0;
  });
  return {
    format: "pickrank-eval-pairs-summary",
    version: 1,
    pairs: {
      total: rows.length,
      validation: val.length,
      test: test.length,
      testTies: testLabels.filter((l) => l === "tie").length,
      validationTies: valLabels.filter((l) => l === "tie").length,
    },
    tieProtocol: {
      method: PAIR_METHODS.tieProtocol,
      threshold,
      thresholdFrom: opts.tieThreshold !== undefined ? "given" : "validation",
      sweep,
      predictedTies: preds.filter((p) => p === "tie").length,
      accuracy: meanInterval(protocolPoints, boot),
    },
    tiesDropped: { method: PAIR_METHODS.tiesDropped, pairs: decided.length, accuracy: meanInterval(droppedPoints, boot) },
    intervalMethod: PAIR_METHODS.interval,
    bootstrap: { unit: "pair", resamples: boot.resamples, confidence: boot.confidence, seed: boot.seed },
  };
}

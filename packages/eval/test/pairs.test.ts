import { describe, expect, it } from "vitest";
import { type PairRow, pairPoints, pairPrediction, softmaxPair, summarizePairs } from "../src/index.ts";

/** A pair with label (l0, l1) whose score difference s0 − s1 is d (|p0 − p1| = tanh(|d|/2)). */
function pair(id: string, split: PairRow["split"], label: "0" | "1" | "tie", d: number): PairRow {
  const [label0, label1] = label === "tie" ? [0.5, 0.5] : label === "0" ? [1, 0] : [0, 1];
  return { id, caption: `caption ${id}`, split, label0, label1, score0: 20 + d, score1: 20 };
}

// |p0 − p1| per d: 0.3 → 0.149, 0.6 → 0.291, 1 → 0.462, 3 → 0.905, 0.2 → 0.0997, 0.5 → 0.245, 2 → 0.762.
const validation = [
  pair("v1", "validation", "tie", 0.3),
  pair("v2", "validation", "tie", 0.6),
  pair("v3", "validation", "0", 1),
  pair("v4", "validation", "1", -3),
  pair("v5", "validation", "0", -0.3),
];
const test = [
  pair("t1", "test", "tie", 0.2),
  pair("t2", "test", "0", 0.5),
  pair("t3", "test", "1", 2),
  pair("t4", "test", "1", -2),
  pair("t5", "test", "0", 0),
];

describe("the Pick-a-Pic tie protocol, step by step", () => {
  it("softmax of two scores", () => {
    const [p0, p1] = softmaxPair(20, 21);
    expect(p0).toBeCloseTo(1 / (1 + Math.E), 15);
    expect(p0 + p1).toBe(1);
  });

  it("a tie is predicted when |p0 − p1| ≤ t (the bound included)", () => {
    expect(pairPrediction(20.3, 20, 0.1)).toBe("0");
    expect(pairPrediction(20.3, 20, 0.2)).toBe("tie");
    expect(pairPrediction(20, 20, 0)).toBe("tie");
    expect(pairPrediction(19, 20, 0.2)).toBe("1");
  });

  it("points: 1 when equal, ½ when exactly one side is a tie, 0 otherwise", () => {
    expect(pairPoints("0", "0")).toBe(1);
    expect(pairPoints("tie", "tie")).toBe(1);
    expect(pairPoints("tie", "1")).toBe(0.5);
    expect(pairPoints("0", "tie")).toBe(0.5);
    expect(pairPoints("0", "1")).toBe(0);
  });
});

describe("summarizePairs", () => {
  const s = summarizePairs([...validation, ...test], { bootstrap: { seed: 3, resamples: 300 } });

  it("chooses t on the validation split (the first best of the grid) and reports the sweep", () => {
    // By hand: t = 0, 0.1 → 3/5; 0.2 → 4/5; 0.3, 0.4 → 4.5/5; 0.5 … 0.9 → 4/5; 1 → 3.5/5.
    const expected = [0.6, 0.6, 0.8, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.7];
    s.tieProtocol.sweep.forEach((x, i) => expect(x.accuracy).toBeCloseTo(expected[i]!, 14));
    expect(s.tieProtocol.threshold).toBe(0.3);
    expect(s.tieProtocol.thresholdFrom).toBe("validation");
  });

  it("test accuracy by the protocol, and with ties dropped, with the counts", () => {
    // t1 tie/tie 1, t2 0/tie ½, t3 1/0 0, t4 1/1 1, t5 0/tie ½ → 3/5.
    expect(s.tieProtocol.accuracy!.estimate).toBeCloseTo(0.6, 14);
    expect(s.tieProtocol.predictedTies).toBe(3);
    // Ties dropped: t2 1, t3 0, t4 1, t5 equal scores ½ → 2.5/4.
    expect(s.tiesDropped.accuracy!.estimate).toBeCloseTo(0.625, 14);
    expect(s.tiesDropped.pairs).toBe(4);
    expect(s.pairs).toEqual({ total: 10, validation: 5, test: 5, testTies: 1, validationTies: 2 });
    expect(s.tieProtocol.method).toMatch(/\|p0 − p1\| ≤ t/);
    expect(s.tiesDropped.method).toMatch(/ties removed/);
    const a = s.tieProtocol.accuracy!;
    expect(a.lo).toBeLessThanOrEqual(a.estimate);
    expect(a.hi).toBeGreaterThanOrEqual(a.estimate);
  });

  it("a given threshold needs no validation split", () => {
    const g = summarizePairs(test, { tieThreshold: 0 });
    expect(g.tieProtocol).toMatchObject({ threshold: 0, thresholdFrom: "given", sweep: [], predictedTies: 1 });
    // t = 0: t1 0 vs tie ½, t2 1, t3 0, t4 1, t5 (equal) tie vs 0 ½ → 3/5.
    expect(g.tieProtocol.accuracy!.estimate).toBeCloseTo(0.6, 14);
  });

  it("no test pairs: accuracies are null, not NaN", () => {
    const v = summarizePairs(validation);
    expect(v.tieProtocol.accuracy).toBeNull();
    expect(v.tiesDropped.accuracy).toBeNull();
  });

  it("BAD CALL - labels other than (1,0), (0,1), (½,½), or no validation split without a threshold, is BAD_INPUT", () => {
    expect(() => summarizePairs([{ ...test[0]!, label0: 0.7, label1: 0.3 }], { tieThreshold: 0.1 })).toThrow(
      /Expected \(1, 0\), \(0, 1\) or \(0.5, 0.5\) for labels of pair t1 but received "\(0.7, 0.3\)"/,
    );
    expect(() => summarizePairs(test)).toThrow(
      'Expected pairs of split "validation" to choose the tie threshold on (pickrank eval pairs --validation <file>), ' +
        "or a fixed tieThreshold (--tie-threshold <t>), but none of the pairs is a validation pair",
    );
    expect(() => summarizePairs(test, { tieThreshold: 2 })).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
  });
});

import { describe, expect, it } from "vitest";
import { bestOfKCurve, expectedMaxOfK, maxWeights, selectorPickCurve } from "../src/index.ts";

/** Every k-subset of 0..n−1. */
function* subsets(n: number, k: number, start = 0, acc: number[] = []): Generator<number[]> {
  if (acc.length === k) {
    yield acc;
    return;
  }
  for (let i = start; i < n; i++) yield* subsets(n, k, i + 1, [...acc, i]);
}

/** Brute force: mean over all k-subsets of the subset's maximum. */
function bruteMax(scores: number[], k: number): number {
  let sum = 0;
  let count = 0;
  for (const s of subsets(scores.length, k)) {
    sum += Math.max(...s.map((i) => scores[i]!));
    count++;
  }
  return sum / count;
}

/** Brute force: mean over k-subsets of the judge score of the pick, a uniform pick among tied selector maxima. */
function brutePick(selector: number[], judge: number[], k: number): number {
  let sum = 0;
  let count = 0;
  for (const s of subsets(selector.length, k)) {
    const best = Math.max(...s.map((i) => selector[i]!));
    const tied = s.filter((i) => selector[i] === best);
    sum += tied.reduce((a, i) => a + judge[i]!, 0) / tied.length;
    count++;
  }
  return sum / count;
}

/** A small deterministic generator for test data (not the bootstrap's). */
function lcg(seed: number) {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

describe("maxWeights", () => {
  it("equals C(i−1,k−1)/C(N,k) and sums to 1", () => {
    // N = 5, k = 3: C(2,2)/10, C(3,2)/10, C(4,2)/10 at positions 3..5.
    expect([...maxWeights(5, 3)]).toEqual([0, 0, expect.closeTo(0.1, 15), expect.closeTo(0.3, 15), expect.closeTo(0.6, 15)]);
    for (const [n, k] of [
      [1, 1],
      [7, 1],
      [7, 7],
      [40, 13],
    ] as const) {
      expect([...maxWeights(n, k)].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
  });

  it("stays finite and exact for large N, where C(N, k) overflows a double", () => {
    const n = 3000;
    const w = maxWeights(n, 1500);
    expect(w.every((x) => Number.isFinite(x) && x >= 0)).toBe(true);
    expect([...w].reduce((a, b) => a + b, 0)).toBeCloseTo(1, 10);
    expect(w[n - 1]).toBeCloseTo(0.5, 15); // P(the largest is drawn) = k/N
  });

  it("BAD CALL - k outside 1..N is BAD_INPUT", () => {
    expect(() => maxWeights(4, 5)).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => maxWeights(4, 0)).toThrow(/Expected integer from 1 to 4 for k but received 0/);
  });
});

describe("expectedMaxOfK / bestOfKCurve against enumeration of all k-subsets", () => {
  it("a worked case: [1, 2, 3, 4], k = 2 → (2·1 + 3·2 + 4·3)/6", () => {
    expect(expectedMaxOfK([4, 1, 3, 2], 2)).toBeCloseTo(20 / 6, 14);
  });

  it("matches brute force for N = 1..9, with and without tied scores", () => {
    const rnd = lcg(7);
    for (let n = 1; n <= 9; n++) {
      const distinct = Array.from({ length: n }, () => 15 + 10 * rnd());
      const tied = Array.from({ length: n }, () => Math.floor(rnd() * 3)); // many equal scores
      for (const scores of [distinct, tied]) {
        const curve = bestOfKCurve(scores);
        expect(curve).toHaveLength(n);
        for (let k = 1; k <= n; k++) {
          expect(curve[k - 1]).toBeCloseTo(bruteMax(scores, k), 12);
          expect(expectedMaxOfK(scores, k)).toBeCloseTo(bruteMax(scores, k), 12);
        }
      }
    }
  });

  it("k = 1 is the mean, k = N the maximum, and the curve never decreases", () => {
    const scores = [21.5, 19.25, 22.75, 20, 18.5, 23];
    const c = bestOfKCurve(scores);
    expect(c[0]).toBeCloseTo(scores.reduce((a, b) => a + b) / scores.length, 13);
    expect(c[5]).toBe(23);
    for (let k = 1; k < c.length; k++) expect(c[k]!).toBeGreaterThanOrEqual(c[k - 1]!);
  });

  it("BAD CALL - non-finite or no scores is BAD_INPUT", () => {
    expect(() => bestOfKCurve([])).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => bestOfKCurve([1, Number.NaN])).toThrow(/Expected finite numbers for scores but received NaN/);
  });
});

describe("selectorPickCurve against enumeration of all k-subsets", () => {
  it("matches brute force with distinct selector scores", () => {
    const rnd = lcg(11);
    for (let n = 1; n <= 8; n++) {
      const sel = Array.from({ length: n }, () => rnd());
      const judge = Array.from({ length: n }, () => 10 * rnd());
      const c = selectorPickCurve(sel, judge);
      for (let k = 1; k <= n; k++) expect(c[k - 1]).toBeCloseTo(brutePick(sel, judge, k), 12);
    }
  });

  it("ties in the selector: a uniform pick among the tied maxima of the subset", () => {
    const rnd = lcg(5);
    for (let n = 2; n <= 9; n++) {
      const sel = Array.from({ length: n }, () => Math.floor(rnd() * 3)); // three levels: many ties
      const judge = Array.from({ length: n }, () => Math.round(100 * rnd()) / 10);
      const c = selectorPickCurve(sel, judge);
      for (let k = 1; k <= n; k++) expect(c[k - 1]).toBeCloseTo(brutePick(sel, judge, k), 12);
    }
    // All tied: every k gives the judge's mean; no tie rule favouring an index.
    expect(selectorPickCurve([1, 1, 1], [3, 6, 9])).toEqual([6, 6, 6].map((v) => expect.closeTo(v, 13)));
  });

  it("with the judge equal to the selector it is the best-of-k curve", () => {
    const s = [3, 1, 4, 1, 5, 9, 2, 6];
    const a = selectorPickCurve(s, s);
    const b = bestOfKCurve(s);
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 12));
  });

  it("BAD CALL - lists of different lengths is BAD_INPUT", () => {
    expect(() => selectorPickCurve([1, 2], [1])).toThrow(/Expected 2 scores \(one per selector score\) for judge but received 1/);
  });
});

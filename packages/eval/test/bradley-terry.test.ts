import { describe, expect, it } from "vitest";
import { bradleyTerry } from "../src/index.ts";

/** Expected win counts for strengths γ with `n` comparisons per pair: n·γi/(γi+γj). */
function expectedWins(gamma: number[], n: number): number[][] {
  return gamma.map((gi, i) => gamma.map((gj, j) => (i === j ? 0 : (n * gi) / (gi + gj))));
}

describe("bradleyTerry (MM)", () => {
  it("recovers known strengths from their expected win counts (the MLE's fixed point)", () => {
    const truth = [1, 2, 4, 0.5, 8];
    const geo = Math.exp(truth.reduce((s, g) => s + Math.log(g), 0) / truth.length);
    const fit = bradleyTerry(expectedWins(truth, 1000));
    expect(fit.converged).toBe(true);
    fit.strength.forEach((g, i) => expect(g).toBeCloseTo(truth[i]! / geo, 7));
    expect(fit.logStrength.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 10);
  });

  it("satisfies the likelihood equations on an unbalanced design with ties counted ½", () => {
    // wins[i][j] with unequal comparison counts; at the MLE, Σ_j n_ij γi/(γi+γj) = w_i for every i.
    const wins = [
      [0, 7.5, 3, 1],
      [2.5, 0, 6, 4],
      [5, 4, 0, 2.5],
      [9, 1, 0.5, 0],
    ];
    const fit = bradleyTerry(wins);
    expect(fit.converged).toBe(true);
    const g = fit.strength;
    for (let i = 0; i < 4; i++) {
      let expected = 0;
      let observed = 0;
      for (let j = 0; j < 4; j++) {
        if (i === j) continue;
        expected += ((wins[i]![j]! + wins[j]![i]!) * g[i]!) / (g[i]! + g[j]!);
        observed += wins[i]![j]!;
      }
      expect(expected).toBeCloseTo(observed, 8);
    }
  });

  it("an item that wins every comparison: no maximum without a prior, finite with virtual ties", () => {
    const wins = [
      [0, 10, 10],
      [0, 0, 6],
      [0, 4, 0],
    ];
    expect(bradleyTerry(wins, { maxIterations: 2000 }).converged).toBe(false);
    const fit = bradleyTerry(wins, { priorTies: 1 });
    expect(fit.converged).toBe(true);
    expect(fit.strength.every(Number.isFinite)).toBe(true);
    expect(fit.strength[0]!).toBeGreaterThan(fit.strength[1]!);
    expect(fit.strength[1]!).toBeGreaterThan(fit.strength[2]!);
  });

  it("BAD CALL - a ragged matrix, a negative count or an item never compared is BAD_INPUT", () => {
    expect(() => bradleyTerry([[0, 1], [1]])).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() =>
      bradleyTerry([
        [0, -1],
        [1, 0],
      ]),
    ).toThrow(/finite counts ≥ 0/);
    expect(() =>
      bradleyTerry([
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 0],
      ]),
    ).toThrow(/an item compared at least once/);
  });
});

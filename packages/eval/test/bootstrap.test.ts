import { describe, expect, it } from "vitest";
import { bootstrap, quantileSorted } from "../src/index.ts";
import { columnMeans } from "../src/stats/bootstrap.ts";

const values = [3, 1, 4, 1, 5, 9, 2, 6];
const mean = (u: Int32Array) => [u.reduce((s, i) => s + values[i]!, 0) / u.length];

describe("quantileSorted", () => {
  it("interpolates linearly between order statistics, as numpy.quantile does", () => {
    // numpy 1.24 (Debian's python3-numpy): np.quantile([3,1,4,1,5,9,2,6], q) for these q.
    const sorted = [...values].sort((a, b) => a - b);
    const q = [0, 0.025, 0.25, 0.5, 0.75, 0.975, 1].map((p) => quantileSorted(sorted, p));
    const numpy = [1.0, 1.0, 1.75, 3.5, 5.25, 8.475000000000001, 9.0];
    q.forEach((v, i) => expect(v).toBeCloseTo(numpy[i]!, 12));
  });
});

describe("bootstrap", () => {
  it("is deterministic for a seed, and another seed gives other draws", () => {
    const a = bootstrap(values.length, mean, { seed: 42, resamples: 500 });
    const b = bootstrap(values.length, mean, { seed: 42, resamples: 500 });
    const c = bootstrap(values.length, mean, { seed: 43, resamples: 500 });
    expect(b).toEqual(a);
    expect(c.lo[0] !== a.lo[0] || c.hi[0] !== a.hi[0]).toBe(true);
    expect(a.estimate[0]).toBe(3.875);
  });

  it("the interval brackets the estimate and lies within the data's range", () => {
    const r = bootstrap(values.length, mean, { seed: 1 });
    expect(r.lo[0]!).toBeLessThan(r.estimate[0]!);
    expect(r.hi[0]!).toBeGreaterThan(r.estimate[0]!);
    expect(r.lo[0]!).toBeGreaterThanOrEqual(1);
    expect(r.hi[0]!).toBeLessThanOrEqual(9);
  });

  it("resamples units uniformly: the bootstrap mean of the means is close to the sample mean", () => {
    // With B = 20000 the average of the resampled means has sd ≈ 2.6/√8/√20000 ≈ 0.0065 around 3.875.
    const all: number[] = [];
    bootstrap(
      values.length,
      (u) => {
        const m = mean(u);
        all.push(m[0]!);
        return m;
      },
      { seed: 9, resamples: 20_000 },
    );
    const avg = all.slice(1).reduce((a, b) => a + b, 0) / (all.length - 1); // first call: the sample itself
    expect(Math.abs(avg - 3.875)).toBeLessThan(0.03);
  });

  it("a single unit or constant data gives a zero-width interval", () => {
    const one = bootstrap(1, () => [7], { seed: 3, resamples: 50 });
    expect(one).toEqual({ estimate: [7], lo: [7], hi: [7] });
    const flat = bootstrap(
      4,
      columnMeans([
        [2, 5],
        [2, 5],
        [2, 5],
        [2, 5],
      ]),
      { resamples: 50 },
    );
    expect(flat.lo).toEqual([2, 5]);
    expect(flat.hi).toEqual([2, 5]);
  });

  it("BAD CALL - no units, zero resamples, a confidence of 1 or a fractional seed is BAD_INPUT", () => {
    expect(() => bootstrap(0, mean)).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => bootstrap(3, mean, { resamples: 0 })).toThrow(/for resamples/);
    expect(() => bootstrap(3, mean, { confidence: 1 })).toThrow(/for confidence/);
    expect(() => bootstrap(3, mean, { seed: 0.5 })).toThrow(/Expected 32-bit integer for seed/);
  });
});

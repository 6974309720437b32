/**
 * Seeded percentile bootstrap over units (prompts, or pairs for human-label accuracy).
 *
 * Each of B resamples draws as many units as there are, uniformly with replacement, and evaluates the
 * statistic on them; the interval at confidence c is the (1−c)/2 and (1+c)/2 quantiles of the B values
 * (Efron's percentile interval; quantiles interpolated linearly between order statistics, numpy's
 * default "linear" method). The draws come from pure-rand's xoroshiro128+ seeded with `seed`; every
 * call starts a fresh generator from that seed, so a result depends only on (data, seed, B), never on
 * what was computed before it.
 */
import { invalidParameter } from "@pickrank/contract";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";

/** Bootstrap settings: resamples B, confidence level c, and the generator's seed. */
export interface BootstrapOptions {
  /** Number of resamples B (default 2000). */
  resamples: number;
  /** Confidence level of the two-sided interval, in (0, 1) (default 0.95). */
  confidence: number;
  /** 32-bit integer seed of the generator (default 0). */
  seed: number;
}

/** The defaults: 2000 resamples, 95 % intervals, seed 0. */
export const DEFAULT_BOOTSTRAP: BootstrapOptions = { resamples: 2000, confidence: 0.95, seed: 0 };

/**
 * Checks and completes bootstrap options.
 * @throws BAD_INPUT for a non-integer or non-positive resample count, a confidence outside (0, 1), or a
 * seed that is not a 32-bit integer.
 */
export function bootstrapOptions(o: Partial<BootstrapOptions> = {}): BootstrapOptions {
  const out = { ...DEFAULT_BOOTSTRAP, ...o };
  if (!Number.isInteger(out.resamples) || out.resamples < 1) throw invalidParameter("resamples", "integer ≥ 1", out.resamples);
  if (!(out.confidence > 0 && out.confidence < 1)) throw invalidParameter("confidence", "number in (0, 1)", out.confidence);
  if (!Number.isInteger(out.seed) || out.seed < -(2 ** 31) || out.seed >= 2 ** 32) {
    throw invalidParameter("seed", "32-bit integer", out.seed);
  }
  return out;
}

/**
 * The q-quantile of ascending `sorted` values, linear between order statistics: position q·(n−1)
 * (numpy's default "linear" method, R's type 7). NaN for an empty list.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/** A statistic of a vector-valued kind, evaluated on the units named by `units` (repeats allowed). */
export type UnitStatistic = (units: Int32Array) => number[];

/** Estimate and percentile interval of each component of a vector statistic. */
export interface BootstrapResult {
  /** The statistic on the sample itself (units 0..n−1 once each). */
  estimate: number[];
  lo: number[];
  hi: number[];
}

/**
 * Percentile bootstrap of a vector statistic over `n` units (see the module comment). Components that
 * come out NaN in a resample (a ratio with no denominator) are left out of that component's quantiles.
 * @throws BAD_INPUT for n < 1 or bad options.
 */
export function bootstrap(n: number, statistic: UnitStatistic, options: Partial<BootstrapOptions> = {}): BootstrapResult {
  if (!Number.isInteger(n) || n < 1) throw invalidParameter("units", "at least one unit to resample", n);
  const o = bootstrapOptions(options);
  const identity = Int32Array.from({ length: n }, (_, i) => i);
  const estimate = statistic(identity);
  const m = estimate.length;
  const draws = Array.from({ length: m }, () => new Float64Array(o.resamples));
  const rng = xoroshiro128plus(o.seed | 0);
  const units = new Int32Array(n);
  for (let b = 0; b < o.resamples; b++) {
    for (let i = 0; i < n; i++) units[i] = uniformInt(rng, 0, n - 1);
    const v = statistic(units);
    for (let j = 0; j < m; j++) draws[j]![b] = v[j]!;
  }
  const alpha = (1 - o.confidence) / 2;
  const lo: number[] = [];
  const hi: number[] = [];
  for (const d of draws) {
    const finite = d.filter((x) => !Number.isNaN(x)).sort();
    lo.push(quantileSorted(finite, alpha));
    hi.push(quantileSorted(finite, 1 - alpha));
  }
  return { estimate, lo, hi };
}

/**
 * Means over units of a units × points matrix (`rows[unit][point]`), as a bootstrap statistic:
 * the mean of each column over the units drawn. The rows are copied into one Float64Array, row-major,
 * so a resample is one pass over contiguous memory.
 */
export function columnMeans(rows: readonly (readonly number[])[]): UnitStatistic {
  const m = rows[0]?.length ?? 0;
  const flat = new Float64Array(rows.length * m);
  rows.forEach((r, u) => flat.set(r, u * m));
  const sum = new Float64Array(m);
  return (units) => {
    sum.fill(0);
    for (let i = 0; i < units.length; i++) {
      const base = units[i]! * m;
      for (let j = 0; j < m; j++) sum[j]! += flat[base + j]!;
    }
    return Array.from(sum, (s) => s / units.length);
  };
}

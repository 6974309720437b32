/**
 * Bradley–Terry ratings by Hunter's MM algorithm (Hunter 2004, "MM algorithms for generalized
 * Bradley–Terry models", Ann. Statist. 32(1), eq. 3): with w_i the wins of i (a tie counts ½ to each
 * side) and n_ij the comparisons of i and j, iterate
 *
 *   γ_i ← w_i / Σ_{j≠i} n_ij / (γ_i + γ_j)
 *
 * then rescale so the geometric mean of γ is 1. Each step increases the likelihood; it converges to the
 * maximum-likelihood strengths when the comparison graph is strongly connected (every split of the
 * items has a win across it both ways). `priorTies` adds that many virtual ties to every compared pair
 * (½ win each way), which keeps the strengths finite when one item wins every comparison.
 */
import { invalidParameter } from "@pickrank/contract";

/** Options of bradleyTerry. */
export interface BradleyTerryOptions {
  /** Virtual ties added to each compared pair (default 0: the plain maximum-likelihood estimate). */
  priorTies?: number;
  /** Stop when no log-strength moves by more than this (default 1e-10). */
  tolerance?: number;
  /** Give up after this many sweeps (default 100 000). */
  maxIterations?: number;
}

/** Strengths γ (geometric mean 1) and their natural logs, with how the iteration ended. */
export interface BradleyTerryFit {
  /** γ_i: P(i beats j) = γ_i / (γ_i + γ_j). */
  strength: number[];
  /** ln γ_i (zero mean): the logit of P(i beats j) is logStrength_i − logStrength_j. */
  logStrength: number[];
  iterations: number;
  converged: boolean;
}

/**
 * Fits Bradley–Terry strengths to a square matrix `wins[i][j]` = (possibly fractional) wins of i over j.
 * @throws BAD_INPUT for a matrix that is not square, a negative or non-finite count, or an item with no
 * comparison at all.
 */
export function bradleyTerry(wins: readonly (readonly number[])[], options: BradleyTerryOptions = {}): BradleyTerryFit {
  const m = wins.length;
  const prior = options.priorTies ?? 0;
  const tol = options.tolerance ?? 1e-10;
  const maxIt = options.maxIterations ?? 100_000;
  if (!(prior >= 0) || !Number.isFinite(prior)) throw invalidParameter("priorTies", "finite number ≥ 0", prior);
  const n: number[][] = [];
  const w: number[] = [];
  for (let i = 0; i < m; i++) {
    const row = wins[i];
    if (!row || row.length !== m) throw invalidParameter("wins", `${m} × ${m} matrix`, row?.length);
    for (const v of row) if (!(v >= 0) || !Number.isFinite(v)) throw invalidParameter("wins", "finite counts ≥ 0", v);
  }
  for (let i = 0; i < m; i++) {
    n.push([]);
    let wi = 0;
    for (let j = 0; j < m; j++) {
      const nij = i === j ? 0 : wins[i]![j]! + wins[j]![i]!;
      const extra = nij > 0 ? prior : 0;
      n[i]!.push(nij + extra);
      if (i !== j) wi += wins[i]![j]! + extra / 2;
    }
    w.push(wi);
    if (n[i]!.every((x) => x === 0)) throw invalidParameter(`wins[${i}]`, "an item compared at least once", 0);
  }
  let gamma = new Array<number>(m).fill(1);
  let it = 0;
  let converged = false;
  while (it < maxIt && !converged) {
    it++;
    const next = gamma.map((g, i) => {
      let denom = 0;
      for (let j = 0; j < m; j++) if (j !== i && n[i]![j]! > 0) denom += n[i]![j]! / (g + gamma[j]!);
      return w[i]! / denom;
    });
    const logMean = next.reduce((s, g) => s + Math.log(g), 0) / m;
    const scaled = next.map((g) => g / Math.exp(logMean));
    converged = scaled.every((g, i) => Math.abs(Math.log(g) - Math.log(gamma[i]!)) <= tol);
    gamma = scaled;
    // An item without a win goes to strength 0 (the likelihood has no maximum): stop, not converged.
    if (gamma.some((g) => !(g > 0) || !Number.isFinite(g))) break;
  }
  return { strength: gamma, logStrength: gamma.map((g) => Math.log(g)), iterations: it, converged };
}

/**
 * Rank agreement between two score lists over the same items (draft vs final render). Both measures
 * handle ties (average ranks for Spearman, tau-b for Kendall) and return null when they are undefined:
 * fewer than two items, or a list with every value equal.
 */
import { invalidParameter } from "@pickrank/contract";

/** 1-based ranks, highest value first, ties get the average of the ranks they span. */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v);
  const ranks = new Array<number>(values.length);
  let k = 0;
  while (k < order.length) {
    let j = k;
    while (j + 1 < order.length && order[j + 1]!.v === order[k]!.v) j++;
    const avg = (k + j) / 2 + 1;
    for (let t = k; t <= j; t++) ranks[order[t]!.i] = avg;
    k = j + 1;
  }
  return ranks;
}

function checkPair(a: readonly number[], b: readonly number[]): void {
  if (a.length !== b.length) throw invalidParameter("b", `a list as long as the first (${a.length})`, `${b.length} items`);
}

/** Spearman's rho: Pearson correlation of the average ranks. */
export function spearman(a: readonly number[], b: readonly number[]): number | null {
  checkPair(a, b);
  const n = a.length;
  if (n < 2) return null;
  const ra = averageRanks(a);
  const rb = averageRanks(b);
  const mean = (n + 1) / 2;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = ra[i]! - mean;
    const db = rb[i]! - mean;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  if (saa === 0 || sbb === 0) return null;
  return sab / Math.sqrt(saa * sbb);
}

/** Kendall's tau-b (O(n²): the refined sets are small). */
export function kendall(a: readonly number[], b: readonly number[]): number | null {
  checkPair(a, b);
  const n = a.length;
  if (n < 2) return null;
  let concordant = 0;
  let discordant = 0;
  let tiesA = 0;
  let tiesB = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const da = Math.sign(a[i]! - a[j]!);
      const db = Math.sign(b[i]! - b[j]!);
      if (da === 0 && db === 0) continue;
      if (da === 0) tiesA++;
      else if (db === 0) tiesB++;
      else if (da === db) concordant++;
      else discordant++;
    }
  }
  const denom = Math.sqrt((concordant + discordant + tiesA) * (concordant + discordant + tiesB));
  if (denom === 0) return null;
  return (concordant - discordant) / denom;
}

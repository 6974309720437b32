/**
 * Diverse top-k: walk the candidates best first and take one only when its image embedding is not too
 * close (cosine above `threshold`) to any already taken. The trade: a near-duplicate of the winner is
 * passed over for a lower-scored but different image, so the top k's mean score can drop; a higher
 * threshold keeps more of the score, a lower one buys more variety. When too few distinct candidates
 * exist, the best skipped ones fill the remaining places (you always get k images when k survived).
 */
export const DEFAULT_DIVERSE_THRESHOLD = 0.9;

/**
 * A candidate diverse selection passed over (or took anyway to fill k places): its index and seed, the
 * picked candidate it was too close to, and their cosine similarity.
 */
export interface DiverseSkip {
  index: number;
  seed: number;
  /** The index of the already-picked candidate it was too close to. */
  similarTo: number;
  cosine: number;
  /** True when it was taken anyway to fill the k places. */
  filled: boolean;
}

/** Cosine of two L2-normalized embeddings. */
function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/**
 * `ranked` must be best first with L2-normalized embeddings. Returns the picks (in pick order, so still
 * best first among the picks) and the skipped ones.
 */
export function selectDiverse<T extends { index: number; seed: number; embedding: Float32Array }>(
  ranked: readonly T[],
  k: number,
  threshold: number = DEFAULT_DIVERSE_THRESHOLD,
): { picked: T[]; skipped: DiverseSkip[] } {
  const picked: T[] = [];
  const skippedItems: T[] = [];
  const skipped: DiverseSkip[] = [];
  for (const c of ranked) {
    if (picked.length >= k) break;
    let worst = -Infinity;
    let near = -1;
    for (const p of picked) {
      const cos = dot(c.embedding, p.embedding);
      if (cos > worst) {
        worst = cos;
        near = p.index;
      }
    }
    if (worst > threshold) {
      skippedItems.push(c);
      skipped.push({ index: c.index, seed: c.seed, similarTo: near, cosine: worst, filled: false });
    } else {
      picked.push(c);
    }
  }
  // Not enough distinct ones: fill with the best skipped, keeping the best-first order overall.
  for (let i = 0; picked.length < k && i < skippedItems.length; i++) {
    picked.push(skippedItems[i]!);
    skipped[i]!.filled = true;
  }
  const pos = new Map(ranked.map((c, i) => [c.index, i]));
  picked.sort((a, b) => pos.get(a.index)! - pos.get(b.index)!);
  return { picked, skipped };
}

/**
 * Ranking and selection, in one place. Scores are PickScore's over one pass's survivors (the
 * probabilities are a softmax over exactly those), ordered by core's `rankScores` — the same order
 * `Scorer.rank` and `pickrank rank` give: best score first, ties in request order so a rerun ranks
 * identically. The selection takes the top k, skipping near-duplicates when asked (diverse.ts).
 */
import { rankScores } from "@pickrank/core";
import { selectDiverse, type DiverseSkip } from "./diverse.ts";
import type { Embedded } from "./score-consumer.ts";
import type { RankedCandidate, SelectorScorer } from "./types.ts";

/** Every embedded candidate scored against the prompt's text embedding and ranked (rank 1 = best). */
export function rankCandidates(
  scorer: Pick<SelectorScorer, "scoreEmbeddings">,
  text: Float32Array,
  embedded: readonly Embedded[],
): RankedCandidate[] {
  if (embedded.length === 0) return [];
  const scores = scorer.scoreEmbeddings(
    text,
    embedded.map((c) => c.embedding),
  );
  const scored = embedded.map((c, i) => {
    const r: Omit<RankedCandidate, "rank"> = {
      key: c.key,
      index: c.index,
      seed: c.seed,
      score: scores[i]!.score,
      prob: scores[i]!.prob,
      backend: c.backend,
      format: c.format,
      image: c.image,
      embedding: c.embedding,
      timings: c.timings,
      reused: c.reused,
    };
    if (c.meta) r.meta = c.meta;
    return r;
  });
  return rankScores(scored);
}

/** The selected candidates, best first, and with diverse selection its threshold and the near-duplicates skipped. */
export interface Selection {
  top: RankedCandidate[];
  diverse?: { threshold: number; skipped: DiverseSkip[] };
}

/** The best `top` of `ranked` (fewer when fewer survived); with a threshold, diverse (see diverse.ts). */
export function selectTop(ranked: readonly RankedCandidate[], top: number, diverseThreshold: number | undefined): Selection {
  const want = Math.min(top, ranked.length);
  if (diverseThreshold === undefined) return { top: ranked.slice(0, want) };
  const { picked, skipped } = selectDiverse(ranked, want, diverseThreshold);
  return { top: picked, diverse: { threshold: diverseThreshold, skipped } };
}

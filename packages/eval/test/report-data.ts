/**
 * A synthetic evaluation for the report tests: 6 prompts with categories and challenges, N = 4 seeds,
 * three configurations with judge scores, and a small set of Pick-a-Pic-format pairs.
 */
import type { CandidateRow, EvalPrompt, PairRow } from "../src/index.ts";

/** A 1×1 PNG. */
export const PNG_1x1 = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
  "base64",
);

export const prompts: EvalPrompt[] = [
  { id: "p1", text: "a red cube on a table", category: "Artifacts", challenge: "Basic" },
  { id: "p2", text: 'a fox in the snow <at dawn> & "quoted"', category: "Animals", challenge: "Basic" },
  { id: "p3", text: "two cats on a sofa", category: "Animals", challenge: "Quantity" },
  { id: "p4", text: "a lighthouse, oil painting", category: "Outdoor Scenes", challenge: "Style & Format" },
  { id: "p5", text: "three apples", category: "Food & Beverage", challenge: "Quantity" },
  { id: "p6", text: "a city at night", category: "Outdoor Scenes", challenge: "Basic" },
];

/** Deterministic scores: a per-config offset, per-prompt level and a seed pattern. */
export function candidateRows(): CandidateRow[] {
  const configs = [
    { name: "sdxl-base", offset: 0.6 },
    { name: "sd15", offset: 0 },
    { name: "sdxl turbo/x", offset: 0.3 },
  ];
  const rows: CandidateRow[] = [];
  prompts.forEach((p, pi) => {
    configs.forEach((c, ci) => {
      for (let s = 0; s < 4; s++) {
        const score = 19 + c.offset + ((pi * 7 + s * 3 + ci * 5) % 11) / 5;
        const judgeScore = 0.2 + ((pi * 5 + s * 7 + ci) % 13) / 40;
        rows.push({
          config: c.name,
          promptId: p.id,
          seedIndex: s,
          seed: 100 + s,
          score,
          judgeScore,
          image: `images/${c.name}/${p.id} ${s}.png`,
        });
      }
    });
  });
  return rows;
}

/** Pairs: validation and test, with ties. */
export function pairRows(): PairRow[] {
  const out: PairRow[] = [];
  for (let i = 0; i < 24; i++) {
    const split = i < 12 ? "validation" : "test";
    const kind = i % 4;
    const [label0, label1] = kind === 0 ? [0.5, 0.5] : kind === 1 || kind === 3 ? [1, 0] : [0, 1];
    const d = ((i * 7) % 9) / 3 - 1.2;
    out.push({ id: `pair-${i}`, caption: `caption ${i}`, split, label0, label1, score0: 20 + d, score1: 20 });
  }
  return out;
}

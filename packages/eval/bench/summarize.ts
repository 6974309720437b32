/**
 * How long summarizeRun, summarizePairs and renderReport take at the sizes evaluators use: prints a
 * table (wall time per call on this machine). Run: pnpm tsx --conditions=development packages/eval/bench/summarize.ts
 */
import { performance } from "node:perf_hooks";
import { type CandidateRow, type EvalPrompt, type PairRow, renderReport, summarizePairs, summarizeRun } from "../src/index.ts";

function lcg(seed: number) {
  let x = seed >>> 0;
  return () => (x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function synthetic(prompts: number, n: number, configs: number) {
  const rnd = lcg(1);
  const ps: EvalPrompt[] = Array.from({ length: prompts }, (_, i) => ({
    id: `p${i}`,
    text: `prompt ${i}`,
    category: `c${i % 12}`,
    challenge: `h${i % 11}`,
  }));
  const rows: CandidateRow[] = [];
  for (let c = 0; c < configs; c++) {
    for (const p of ps) {
      for (let s = 0; s < n; s++) {
        const score = 20 + c * 0.2 + rnd() * 2;
        rows.push({
          config: `cfg${c}`,
          promptId: p.id,
          seedIndex: s,
          seed: s,
          score,
          judgeScore: score / 20 + rnd(),
          image: `${c}/${p.id}/${s}.png`,
        });
      }
    }
  }
  return { ps, rows };
}

function time<T>(f: () => T): [T, number] {
  const t0 = performance.now();
  const v = f();
  return [v, performance.now() - t0];
}

console.log("| prompts | N | configs | candidates | B | summarizeRun ms | renderReport ms | report MB |");
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const [prompts, n, configs] of [
  [50, 4, 2],
  [200, 8, 3],
  [1632, 8, 2],
  [1632, 32, 4],
] as const) {
  const { ps, rows } = synthetic(prompts, n, configs);
  const [run, ms] = time(() => summarizeRun(ps, rows, { bootstrap: { resamples: 2000 } }));
  const [html, rms] = time(() => renderReport({ run, prompts: ps, rows, galleryPrompts: 100 }));
  const row = [prompts, n, configs, rows.length, 2000, ms.toFixed(0), rms.toFixed(0), (html.length / 1e6).toFixed(1)];
  console.log(`| ${row.join(" | ")} |`);
}
const rnd = lcg(2);
const pairs: PairRow[] = Array.from({ length: 28_000 }, (_, i) => ({
  id: `${i}`,
  caption: "c",
  split: i < 14_000 ? "validation" : "test",
  label0: i % 5 === 0 ? 0.5 : i % 2,
  label1: i % 5 === 0 ? 0.5 : 1 - (i % 2),
  score0: 20 + rnd(),
  score1: 20 + rnd(),
}));
const [, pms] = time(() => summarizePairs(pairs));
console.log(`\nsummarizePairs, ${pairs.length} pairs (B = 2000): ${pms.toFixed(0)} ms`);

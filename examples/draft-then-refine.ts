/**
 * Draft-then-refine: render 16 cheap drafts (8 steps, 384×384), rank them with PickScore, and render
 * only the best 4 again at full settings (30 steps, 768×768) with the same seeds. Prints how well the
 * draft ranking predicted the final one, so you can decide whether drafting pays for your model.
 *
 *   pnpm tsx --conditions=development examples/draft-then-refine.ts "a red fox in the snow, watercolor"
 *
 * Environment as in select-best-of.ts (PICKRANK_BACKEND, PICKRANK_URL, PICKRANK_MODEL, PICKRANK_N).
 */
import { createBackend } from "@pickrank/adapters";
import { listModels, pullModel, Scorer } from "@pickrank/core";
import { bestOf } from "@pickrank/selector";

const prompt = process.argv[2] ?? "a red fox in the snow, watercolor";
const kind = process.env["PICKRANK_BACKEND"] ?? "comfyui";
const url = process.env["PICKRANK_URL"] ?? (kind === "a1111" ? "http://127.0.0.1:7860" : "http://127.0.0.1:8188");
const n = Number(process.env["PICKRANK_N"] ?? 16);
const model = process.env["PICKRANK_MODEL"] ?? (await listModels())[0]?.dir ?? (await pullModel()).dir;

const backend = createBackend({ kind, url });
const scorer = await Scorer.create({ model, device: "auto" });
try {
  const r = await bestOf({
    prompt,
    n,
    backend,
    scorer,
    params: { steps: 30, width: 768, height: 768 },
    refine: { draft: { steps: 8, width: 384, height: 384 }, k: Math.min(4, n) },
  });
  const rf = r.refine!;
  const f = (x: number | null) => (x === null ? "n/a" : x.toFixed(2));
  console.log(`${rf.drafts.length} drafts → best ${rf.k} re-rendered at full settings`);
  for (const c of r.ranked)
    console.log(`  final #${c.rank} seed ${c.seed} score ${c.score.toFixed(3)} (draft #${c.draft!.rank}, ${c.draft!.score.toFixed(3)})`);
  console.log(`agreement: spearman ${f(rf.spearman)}, kendall ${f(rf.kendall)}, draft best stayed best: ${rf.bestStayedBest}`);
  // Rough cost: N cheap renders + k full ones instead of N full ones.
  console.log(`best: seed ${r.best.seed}`);
} finally {
  await scorer.dispose();
  await backend.close();
}

/**
 * Pipeline authors: best-of-N from TypeScript. Renders N candidates on ComfyUI (or Automatic1111),
 * scores each with PickScore as it arrives, and keeps the best — with every candidate's score.
 *
 *   pnpm tsx --conditions=development examples/select-best-of.ts "a lighthouse at dusk, oil painting"
 *
 * Environment: PICKRANK_BACKEND (comfyui | a1111, default comfyui), PICKRANK_URL (default the
 * backend's local port), PICKRANK_MODEL (a converted model folder; default the cached PickScore
 * model, downloaded and converted on first use), PICKRANK_N (default 8), PICKRANK_OUT (save PNGs).
 */
import { createBackend } from "@pickrank/adapters";
import { listModels, pullModel, Scorer } from "@pickrank/core";
import { bestOf } from "@pickrank/selector";

const prompt = process.argv[2] ?? "a lighthouse at dusk, oil painting";
const kind = process.env["PICKRANK_BACKEND"] ?? "comfyui";
const url = process.env["PICKRANK_URL"] ?? (kind === "a1111" ? "http://127.0.0.1:7860" : "http://127.0.0.1:8188");
const n = Number(process.env["PICKRANK_N"] ?? 8);

async function modelDir(): Promise<string> {
  if (process.env["PICKRANK_MODEL"]) return process.env["PICKRANK_MODEL"];
  const cached = await listModels();
  return cached[0]?.dir ?? (await pullModel()).dir;
}

// One scorer and one backend serve every call: load once, reuse, dispose at the end.
const backend = createBackend({ kind, url });
const scorer = await Scorer.create({ model: await modelDir(), device: "auto" });
const ctl = new AbortController();
process.once("SIGINT", () => ctl.abort());
try {
  const result = await bestOf({
    prompt,
    n,
    backend,
    scorer,
    top: 2,
    params: { steps: 20, width: 512, height: 512 },
    signal: ctl.signal,
    ...(process.env["PICKRANK_OUT"] ? { out: process.env["PICKRANK_OUT"] } : {}),
    onEvent: (e) => {
      if (e.type === "scored") process.stderr.write(`scored ${e.scored}/${e.total} (seed ${e.seed})\n`);
    },
  });
  console.log(`best: seed ${result.best.seed}, score ${result.best.score.toFixed(3)}, p=${result.best.prob.toFixed(3)} (${scorer.device})`);
  for (const c of result.ranked) console.log(`  #${c.rank} seed ${c.seed} score ${c.score.toFixed(3)}${c.file ? ` → ${c.file}` : ""}`);
  for (const f of result.failed) console.log(`  failed seed ${f.seed}: ${f.error.code}`);
  // result.best.image is the PNG/JPEG bytes: hand it to the next stage of your pipeline.
} finally {
  await scorer.dispose();
  await backend.close();
}

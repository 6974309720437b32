/**
 * One scoring configuration of `pnpm bench`, in a process of its own so its peak RSS is its own:
 * sessions of one model folder on the CPU (graph variant as asked), the prompt's text embedding, then
 * the vision graph on the same preprocessed pixels the PyTorch baseline reads (PREFIX.pixels.f32, batches
 * of 8), N = each of --ns. Prints one JSON line: start-up, ms per N, scores, peak RSS. Asserts nothing.
 *
 *   tsx --conditions=development bench/scoring-child.ts --model DIR --graph standard|fused --inputs PREFIX --ns 1,8,32
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { Scorer } from "../src/index.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    graph: { type: "string", default: "auto" },
    device: { type: "string", default: "cpu" },
    inputs: { type: "string" },
    ns: { type: "string", default: "1,8,32" },
    repeats: { type: "string", default: "1" },
    prompt: { type: "string", default: "a lighthouse at dawn, oil painting" },
  },
});

const graph = values.graph as "auto" | "standard" | "fused";
const device = values.device as "cpu" | "webgpu" | "cuda";
const raw = await readFile(`${values.inputs}.pixels.f32`);
const plane = 3 * 224 * 224;
const all = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
const images = Array.from({ length: all.length / plane }, (_, i) => all.subarray(i * plane, (i + 1) * plane));

const t0 = performance.now();
const scorer = await Scorer.create({ model: values.model!, device, graph, batchSize: 8, preprocessWorkers: 0 });
const startMs = performance.now() - t0;
const rows: { n: number; ms: number; all: number[]; scores: number[] }[] = [];
try {
  const text = await scorer.embedText(values.prompt!);
  // Warm-up: the first run allocates and plans.
  await scorer.embedPixels(images.slice(0, 1));
  for (const n of values.ns!.split(",").map(Number)) {
    const px = Array.from({ length: n }, (_, i) => images[i % images.length]!);
    const times: number[] = [];
    let embs: Float32Array[] = [];
    for (let r = 0; r < Number(values.repeats); r++) {
      const t = performance.now();
      embs = await scorer.embedPixels(px);
      times.push(performance.now() - t);
    }
    const scale = Math.exp(scorer.logitScale);
    const scores = embs.map((e) => scale * e.reduce((a, x, i) => a + x * text[i]!, 0));
    rows.push({ n, ms: [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)]!, all: times, scores });
  }
} finally {
  await scorer.dispose();
}
const peakRssMb = process.resourceUsage().maxRSS / 1024;
console.log(JSON.stringify({ dtype: scorer.manifest.dtype, graph: scorer.graphVariant, device: scorer.device, startMs, rows, peakRssMb }));

/**
 * One start-up measurement in a fresh process (bench/startup.ts starts it): opens a converted model's
 * text and vision graphs the way `mode` says, then runs the text graph once and the vision graph on one
 * image, and prints one JSON line: seconds to sessions ready, seconds to that first score, peak RSS.
 *
 *   tsx --conditions=development startup-child.ts <model dir> <mode>
 *   mode: main-serial   both sessions on the main thread, one after the other (pickrank before)
 *         worker-concurrent   each on its own worker thread, both at once (pickrank now)
 *         worker-no-prepack   worker-concurrent with prepackWeights false (session.disable_prepacking):
 *                             what `pickrank rank` does for a few images
 */
import path from "node:path";
import { openSession, type GraphSession } from "../src/runtime/ort.ts";

const [dir, mode] = process.argv.slice(2) as [string, string];
const px = new Float32Array(3 * 224 * 224).fill(0.1);
const ids = BigInt64Array.from({ length: 77 }, (_, i) => BigInt(i === 0 ? 49406 : i === 1 ? 49407 : 0));

async function openAll(): Promise<{ text: GraphSession; vision: GraphSession }> {
  const text = path.join(dir, "text.onnx");
  const vision = path.join(dir, "vision.onnx");
  if (mode === "main-serial") {
    const t = await openSession(text, "cpu", { thread: "main" });
    return { text: t, vision: await openSession(vision, "cpu", { thread: "main" }) };
  }
  const opts = mode === "worker-no-prepack" ? { prepackWeights: false } : {};
  const [t, v] = await Promise.all([openSession(text, "cpu", opts), openSession(vision, "cpu", opts)]);
  return { text: t, vision: v };
}

const t0 = performance.now();
const { text, vision } = await openAll();
const ready = performance.now() - t0;
await Promise.all([
  text.run({ input_ids: { type: "int64", data: ids, dims: [1, 77] } }),
  vision.run({ pixel_values: { type: "float32", data: px, dims: [1, 3, 224, 224] } }),
]);
const first = performance.now() - t0;
console.log(JSON.stringify({ readyS: ready / 1000, firstScoreS: first / 1000, peakRssMb: process.resourceUsage().maxRSS / 1024 }));
process.exit(0);

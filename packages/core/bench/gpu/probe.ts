/**
 * Quick device check before the long benchmark runs: opens a (small) converted model on each named
 * device, scores two raw images, and prints which device ran or the whole error (the bench table
 * cuts it to 90 characters). Exit code 0 when every named device worked, 3 when one did not.
 *
 * With `--against <fp32 model dir>` it also checks the device's numbers: `--images` images (default 8)
 * scored for two prompts on the device and by the reference model on the CPU provider (itself checked
 * against the Python reference in the tests), reporting the largest score difference relative to the
 * score scale, the largest probability difference and whether the best image is the same. The same
 * weights in fp16 on a GPU against fp32 on the CPU: the error fp16 kernels add (no pass/fail here; the
 * tests hold the bounds).
 *
 *   node --import tsx packages/core/bench/gpu/probe.ts --model <converted dir> [--devices webgpu,auto] [--graphs auto,fused]
 *        [--against <fp32 converted dir> --images 8]
 */
import { parseArgs } from "node:util";
import { Scorer, type DeviceRequest, type RawImage } from "../../src/index.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    devices: { type: "string", default: "webgpu,auto" },
    /** Graph variants to probe on each device (auto: the device's default; fused: MultiHeadAttention too). */
    graphs: { type: "string", default: "auto" },
    against: { type: "string" },
    images: { type: "string", default: "8" },
  },
});
const nImages = Number(values.images);
if (!values.model || !Number.isInteger(nImages) || nImages < 2) {
  console.error("usage: probe.ts --model <converted dir> [--devices webgpu,auto] [--against <fp32 converted dir> --images N≥2]");
  process.exit(2);
}
const PROMPTS = ["a lighthouse at dawn, oil painting", "a red fox in snow"];

/** Per prompt: scores and probabilities of the images, in input order. */
async function scoreSet(scorer: Scorer, images: RawImage[]): Promise<{ score: number; prob: number }[][]> {
  const embeds = await scorer.embedImages(images); // once for both prompts
  const out: { score: number; prob: number }[][] = [];
  for (const p of PROMPTS) out.push(scorer.scoreEmbeddings(await scorer.embedText(p), embeds));
  return out;
}

let reference: { score: number; prob: number }[][] | undefined;
const parityImages = Array.from({ length: nImages }, (_, k) => photo(k));
if (values.against) {
  const t0 = performance.now();
  const ref = await Scorer.create({ model: values.against, device: "cpu", preprocessWorkers: 0 });
  try {
    reference = await scoreSet(ref, parityImages);
    console.log(
      `reference: ${values.against} on cpu, ${nImages} images × ${PROMPTS.length} prompts in ${(performance.now() - t0).toFixed(0)} ms`,
    );
  } finally {
    await ref.dispose();
  }
}

function parity(got: { score: number; prob: number }[][], ref: { score: number; prob: number }[][]): string {
  let scale = 0;
  let scoreErr = 0;
  let probErr = 0;
  let sameBest = 0;
  for (const [p, row] of ref.entries()) {
    const g = got[p]!;
    for (const [i, r] of row.entries()) {
      scale = Math.max(scale, Math.abs(r.score));
      scoreErr = Math.max(scoreErr, Math.abs(g[i]!.score - r.score));
      probErr = Math.max(probErr, Math.abs(g[i]!.prob - r.prob));
    }
    const best = (xs: { score: number }[]) => xs.reduce((b, x, i) => (x.score > xs[b]!.score ? i : b), 0);
    if (best(g) === best(row)) sameBest++;
  }
  return `max |Δscore|/max|score| ${(scoreErr / scale).toExponential(2)}, max |Δprob| ${probErr.toExponential(2)}, same best image for ${sameBest}/${ref.length} prompts`;
}

function image(seed: number): RawImage {
  const width = 256;
  const height = 256;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + seed * 97) & 0xff;
  return { data, width, height, channels: 3 };
}

/** Images that differ in layout and colour, not only by an offset: gradients in a seed's direction plus noise. */
function photo(seed: number): RawImage {
  const size = 320;
  const data = new Uint8Array(size * size * 3);
  const a = (seed * 2.399963) % (2 * Math.PI);
  const [dx, dy] = [Math.cos(a), Math.sin(a)];
  let s = 977 + seed * 7919;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const n = (s >>> 24) % 32;
      const t = ((x * dx + y * dy) / size + 1) / 2;
      const i = (y * size + x) * 3;
      data[i] = (255 * t + n + seed * 37) & 0xff;
      data[i + 1] = (255 * (1 - t) + n) & 0xff;
      data[i + 2] = (Math.abs(x - size / 2) + Math.abs(y - size / 2) + seed * 53 + n) & 0xff;
    }
  }
  return { data, width: size, height: size, channels: 3 };
}

function describeError(e: unknown): string {
  const parts: string[] = [];
  for (let cur: unknown = e, depth = 0; cur && depth < 4; cur = (cur as { cause?: unknown }).cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    parts.push(`${code ? `[${String(code)}] ` : ""}${cur instanceof Error ? cur.message : String(cur)}`);
  }
  return parts.join("\n    caused by: ");
}

let failed = 0;
type Graph = "auto" | "standard" | "fused" | "fused-no-mha";
const graphs = (values.graphs ?? "auto").split(",").filter(Boolean) as Graph[];
for (const [device, graph] of (values.devices ?? "")
  .split(",")
  .filter(Boolean)
  .flatMap((d) => graphs.map((g) => [d as DeviceRequest, g] as const))) {
  const t0 = performance.now();
  try {
    const scorer = await Scorer.create({ model: values.model, device, preprocessWorkers: 0, graph });
    try {
      const ready = performance.now() - t0;
      const scores = await scorer.score("a probe", [image(1), image(2)]);
      const what = `${device} ${scorer.graphVariant}`;
      console.log(
        `probe ${what}: OK — ${scorer.describeDevice()}; ready in ${ready.toFixed(0)} ms; scores ${scores.map((s) => s.score.toFixed(4)).join(", ")}`,
      );
      if (reference) {
        console.log(
          `parity ${what} (${values.model}) vs cpu fp32 (${values.against}): ${parity(await scoreSet(scorer, parityImages), reference)}`,
        );
      }
    } finally {
      await scorer.dispose();
    }
  } catch (e) {
    failed++;
    console.log(`probe ${device} ${graph}: FAILED after ${(performance.now() - t0).toFixed(0)} ms\n    ${describeError(e)}`);
  }
}
process.exitCode = failed > 0 ? 3 : 0;

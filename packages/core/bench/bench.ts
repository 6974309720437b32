/**
 * pnpm bench — prints tables; asserts nothing. Compare rows of the same run only.
 *
 *   pnpm bench [--model <converted dir> | --hf <HF CLIPModel dir>] [--dtype fp32|fp16]
 *              [--devices cpu,webgpu,cuda] [--n 8,32] [--size 1024] [--repeats 3] [--skip-preprocess]
 *              [--skip-startup] [--skip-scoring] [--startup-rounds 3] [--python /usr/bin/python3]
 *              [--graphs auto|standard,fused,fused-no-mha] [--variants fp32,fp16,int8]
 *              [--scoring-models fp32=<dir>,int8=<dir>] [--torch-modes fp32,bf16w] [--scoring-n 1,8,32]
 *
 * 1. Preprocessing, ms per 1024×1024 PNG: pickrank's path (sharp decode + PIL-exact bicubic) against a
 *    simple baseline (sharp's own cubic resize + crop + normalize), one at a time and 8 at once.
 *    Then the same path on the worker pool against PIL + numpy (../shared/bench/pre_py.py) on gen_pngs.py's
 *    photo-like PNGs (bench/preprocess-rows.ts).
 * 1b. With --hf: start-up, sessions ready against PyTorch loading the same weights (bench/startup.ts).
 * 2. Scoring, per device that starts: PNG bytes → scores for N candidates (end to end, as `rank`
 *    runs it), and the vision graph alone on preprocessed tensors.
 * 3. Scoring variants on the CPU (bench/scoring.ts), with --variants or --scoring-models: N = 1, 8, 32 in
 *    fp32, fp32 fused, fp16 and int8 against torch fp32 and bf16 on the same checkpoint (--hf) and pixels,
 *    as ratios, each configuration in its own process for its peak RSS. Folders missing from
 *    --scoring-models are converted from --hf (int8 takes minutes for PickScore). Torch on OpenBLAS:
 *    PICKRANK_BENCH_BLAS=<dir with libblas.so.3> (../shared/bench/README.md).
 * Default model: the tiny CLIP of the test fixtures (a plumbing check, not a speed figure). For real
 * figures pass --hf with a PickScore-sized folder (bench/make-random-clip.ts --size pickscore writes one).
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { CLIP_PREPROCESS, convertModel, preprocessImage, readManifest, Scorer, type DeviceName } from "../src/index.ts";
import { defaultPreprocessWorkers, PreprocessPool } from "../src/preprocess/worker-pool.ts";
import { benchScoringVariants } from "./scoring.ts";
import { benchPreprocessVsPil, photoPngs, readPngs } from "./preprocess-rows.ts";
import { benchStartup } from "./startup.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    hf: { type: "string" },
    dtype: { type: "string", default: "fp32" },
    devices: { type: "string", default: "cpu,webgpu,cuda" },
    n: { type: "string", default: "8,32" },
    size: { type: "string", default: "1024" },
    repeats: { type: "string", default: "3" },
    "batch-size": { type: "string", default: "8" },
    "skip-preprocess": { type: "boolean", default: false },
    variants: { type: "string" },
    /** Graph variants for the scoring rows, comma-separated: auto (the device's, graphsForDevice), standard, fused, fused-no-mha. */
    graphs: { type: "string", default: "auto" },
    "scoring-models": { type: "string" },
    "torch-modes": { type: "string", default: "fp32,bf16w" },
    "scoring-n": { type: "string", default: "1,8,32" },
    threads: { type: "string", default: String(os.cpus().length) },
    "skip-startup": { type: "boolean", default: false },
    "skip-scoring": { type: "boolean", default: false },
    "startup-rounds": { type: "string", default: "3" },
    python: { type: "string", default: "/usr/bin/python3" },
  },
});

const sizePx = Number(values.size);
const repeats = Number(values.repeats);
const ns = (values.n ?? "8,32").split(",").map(Number);
const batchSize = Number(values["batch-size"]);
const dtype = values.dtype === "fp16" ? "fp16" : "fp32";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

function table(title: string, headers: string[], rows: (string | number)[][]): void {
  const cells = rows.map((r) =>
    r.map((c) => (typeof c === "number" ? (Number.isInteger(c) ? String(c) : c.toFixed(c >= 100 ? 0 : 1)) : c)),
  );
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i]).length)));
  console.log(`\n${title}`);
  console.log("| " + headers.map((h, i) => h.padEnd(widths[i]!)).join(" | ") + " |");
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
  for (const r of cells) console.log("| " + r.map((c, i) => String(c).padEnd(widths[i]!)).join(" | ") + " |");
}

/** Photo-like test images: smooth gradients plus noise, so PNG sizes resemble generated images. */
async function makePngs(count: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let k = 0; k < count; k++) {
    const raw = Buffer.alloc(sizePx * sizePx * 3);
    let s = 12345 + k * 7919;
    for (let y = 0; y < sizePx; y++) {
      for (let x = 0; x < sizePx; x++) {
        s = (s * 1103515245 + 12345) >>> 0;
        const n = (s >>> 24) % 24;
        const i = (y * sizePx + x) * 3;
        raw[i] = (x * 255) / sizePx + n;
        raw[i + 1] = (y * 255) / sizePx + n;
        raw[i + 2] = ((x + y + k * 40) % 256) ^ n;
      }
    }
    out.push(
      await sharp(raw, { raw: { width: sizePx, height: sizePx, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return out;
}

/** The simple baseline: sharp's own cubic resize and crop, then normalize in a plain loop. */
async function baselinePreprocess(bytes: Buffer): Promise<Float32Array> {
  const { size, mean, std } = CLIP_PREPROCESS;
  const img = sharp(bytes).removeAlpha().toColourspace("srgb");
  const meta = await sharp(bytes).metadata();
  const w = meta.width!;
  const h = meta.height!;
  const scale = size / Math.min(w, h);
  const rw = w <= h ? size : Math.floor(size * (w / h));
  const rh = h < w ? size : Math.floor(size * (h / w));
  void scale;
  const { data } = await img
    .resize(rw, rh, { kernel: "cubic", fit: "fill" })
    .extract({ left: Math.floor((rw - size) / 2), top: Math.floor((rh - size) / 2), width: size, height: size })
    .raw()
    .toBuffer({ resolveWithObject: true });
  const out = new Float32Array(3 * size * size);
  for (let p = 0; p < size * size; p++) {
    for (let c = 0; c < 3; c++) out[c * size * size + p] = (data[p * 3 + c]! / 255 - mean[c]!) / std[c]!;
  }
  return out;
}

async function benchPreprocess(pngs: Buffer[]): Promise<void> {
  const rows: (string | number)[][] = [];
  const workers = Math.max(1, defaultPreprocessWorkers());
  const pool = new PreprocessPool(workers);
  for (const [name, fn] of [
    ["pickrank, main thread (exact bicubic)", (b: Buffer) => preprocessImage(b)],
    [`pickrank, ${workers} worker thread(s)`, (b: Buffer) => pool.run(b, CLIP_PREPROCESS)],
    ["baseline (sharp's cubic resize)", baselinePreprocess],
  ] as const) {
    await fn(pngs[0]!); // warm-up
    const serial: number[] = [];
    const parallel: number[] = [];
    for (let r = 0; r < repeats; r++) {
      const [t] = await time(async () => {
        for (const b of pngs) await fn(b);
      });
      serial.push(t / pngs.length);
      const [tp] = await time(() => Promise.all(pngs.map((b) => fn(b))));
      parallel.push(tp / pngs.length);
    }
    rows.push([name, median(serial), median(parallel)]);
  }
  await pool.close();
  table(
    `Preprocessing, ${sizePx}×${sizePx} PNG → [3,224,224] float32 (median of ${repeats}, ${pngs.length} images, ${os.cpus().length} cores)`,
    ["path", "ms/image one at a time", "ms/image 8 at once"],
    rows,
  );
}

/** Prints the header now and each row as it is measured, so a run cut short keeps what it measured. */
function streamTable(title: string, headers: string[]): (cells: (string | number)[]) => void {
  console.log(`\n${title}`);
  console.log("| " + headers.join(" | ") + " |");
  console.log("|" + headers.map((h) => "-".repeat(h.length + 2)).join("|") + "|");
  return (cells) =>
    console.log(
      "| " +
        cells.map((c) => (typeof c === "number" ? (Number.isInteger(c) ? String(c) : c.toFixed(c >= 100 ? 0 : 1)) : c)).join(" | ") +
        " |",
    );
}

async function benchScoring(modelDir: string, pngs: Buffer[]): Promise<void> {
  const manifest = await readManifest(modelDir);
  const row = streamTable(
    `Scoring ${manifest.dtype} (vision width ${manifest.dims.visionWidth}, batch ${batchSize}), median of ${repeats}`,
    ["device", "N", "PNG bytes → scores ms", "vision graph only ms", "images/s end to end", "note"],
  );
  const wanted = (values.devices ?? "").split(",").filter(Boolean) as DeviceName[];
  const graphs = (values.graphs ?? "auto").split(",").filter(Boolean) as ("auto" | "standard" | "fused")[];
  for (const [device, graph] of wanted.flatMap((d) => graphs.map((g) => [d, g] as const))) {
    let scorer: Scorer;
    try {
      const [ms, s] = await time(() => Scorer.create({ model: modelDir, device, batchSize, graph }));
      scorer = s;
      console.error(`${device} (${s.graphVariant} graphs): sessions ready in ${ms.toFixed(0)} ms`);
    } catch (e) {
      row([device, "—", "—", "—", "—", `unavailable: ${(e as Error).message.slice(0, 90)}`]);
      continue;
    }
    const label = graphs.length > 1 || graph !== "auto" ? `${device} ${scorer.graphVariant}` : device;
    try {
      for (const n of ns) {
        const images = Array.from({ length: n }, (_, i) => pngs[i % pngs.length]!);
        await scorer.score("a warm-up prompt", images.slice(0, Math.min(n, batchSize)));
        const e2e: number[] = [];
        for (let r = 0; r < repeats; r++) e2e.push((await time(() => scorer.score(`prompt ${r}`, images)))[0]);
        // Vision graph alone, on tensors preprocessed beforehand.
        const tensors = await Promise.all(images.map((b) => preprocessImage(b)));
        const modelOnly: number[] = [];
        for (let r = 0; r < repeats; r++) modelOnly.push((await time(() => visionOnly(scorer, tensors)))[0]);
        const t = median(e2e);
        row([label, n, t, median(modelOnly), (n / t) * 1000, ""]);
      }
    } finally {
      await scorer.dispose();
    }
  }
}

async function visionOnly(scorer: Scorer, tensors: Float32Array[]): Promise<void> {
  await scorer.embedPixels(tensors);
}

/** Section 3: model folders from --scoring-models, the rest of --variants converted from --hf. */
async function scoringVariants(pngs: Buffer[]): Promise<void> {
  const models: Partial<Record<"fp32" | "fp16" | "int8", string>> = {};
  for (const kv of (values["scoring-models"] ?? "").split(",").filter(Boolean)) {
    const [k, v] = kv.split("=");
    if ((k === "fp32" || k === "fp16" || k === "int8") && v) models[k] = v;
  }
  for (const d of (values.variants ?? "").split(",").filter(Boolean)) {
    if ((d !== "fp32" && d !== "fp16" && d !== "int8") || models[d] || !values.hf) continue;
    const out = path.join(tmp, `scoring-${d}`);
    const [ms] = await time(() => convertModel(values.hf!, { out, dtype: d }));
    console.error(`converted ${values.hf} (${d}) in ${(ms / 1000).toFixed(1)} s`);
    models[d] = out;
  }
  await benchScoringVariants({
    models,
    ...(values.hf ? { hf: values.hf } : {}),
    pngs,
    ns: (values["scoring-n"] ?? "1,8,32").split(",").map(Number),
    repeats,
    tmp,
    torchModes: (values["torch-modes"] ?? "").split(",").filter(Boolean),
    threads: Number(values.threads),
  });
}

const tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-bench-"));
try {
  let modelDir = values.model;
  if (!modelDir) {
    const hf = values.hf ?? path.resolve(import.meta.dirname, "../../../../shared/fixtures/pickscore-reference/tiny-clip");
    modelDir = path.join(tmp, "model");
    const [ms] = await time(() => convertModel(hf, { out: modelDir!, dtype }));
    console.error(`converted ${hf} (${dtype}) in ${(ms / 1000).toFixed(1)} s`);
  }
  console.log(`pickrank bench — node ${process.version}, ${os.cpus()[0]?.model ?? "cpu"} ×${os.cpus().length}, model ${modelDir}`);
  const pngs = await makePngs(8);
  console.error(`test images: 8 PNGs of ${sizePx}×${sizePx}, ${(pngs.reduce((a, b) => a + b.length, 0) / 8 / 1e6).toFixed(2)} MB each`);
  const shared = path.resolve(import.meta.dirname, "../../../../shared/bench");
  const python = values.python!;
  if (!values["skip-preprocess"]) {
    await benchPreprocess(pngs);
    const files = await photoPngs({ python, shared, dir: path.join(tmp, "photos"), count: 8 });
    const photos = files ? await readPngs(files) : pngs;
    await benchPreprocessVsPil({ pngs: photos, pngDir: files ? path.join(tmp, "photos") : undefined, rounds: repeats, python, shared });
  }
  if (values.hf && !values["skip-startup"]) {
    await benchStartup({ hf: values.hf, tmp, rounds: Number(values["startup-rounds"]), python, shared });
  }
  if (!values["skip-scoring"]) await benchScoring(modelDir, pngs);
  if (values.variants || values["scoring-models"]) await scoringVariants(pngs);
  console.log(`\npeak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
} finally {
  await rm(tmp, { recursive: true, force: true });
}

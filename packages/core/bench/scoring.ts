/**
 * The scoring rows of `pnpm bench`: the vision tower on the CPU for N = 1, 8, 32 (batches of 8) in each
 * graph dtype and variant pickrank writes (fp32, fp32 fused, fp16, int8), against the PyTorch baseline
 * of ../shared/bench/clip_torch.py (fp32 and bf16 weights) on the same checkpoint and the same
 * preprocessed pixels, as ratios measured in the same run, with each configuration's peak RSS (every
 * configuration runs in a process of its own) and its size on disk. Before any speed is compared, the
 * scores are checked against torch fp32's. Asserts nothing; prints tables.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { ClipTokenizer, preprocessImage, readManifest } from "../src/index.ts";

const run = promisify(execFile);

/** One measured configuration: label, ms per N, scores per N, start-up, peak RSS, bytes on disk. */
export interface ScoringResult {
  label: string;
  rows: { n: number; ms: number; scores: number[] }[];
  startMs: number;
  peakRssMb: number;
  diskBytes?: number;
}

export interface ScoringBenchOptions {
  /** Model folders by dtype (fp32 should hold the fused variant too). */
  models: Partial<Record<"fp32" | "fp16" | "int8", string>>;
  /** HF folder of the same checkpoint, for the PyTorch baseline (skipped when absent). */
  hf?: string;
  pngs: Buffer[];
  ns: number[];
  repeats: number;
  tmp: string;
  /** clip_torch.py modes to run (default fp32 and bf16w). */
  torchModes: string[];
  /** CPU threads for torch (ORT uses its default, all cores). */
  threads: number;
}

const HERE = import.meta.dirname;
const SHARED_BENCH = path.resolve(HERE, "../../../../shared/bench");
const PYTHON = "/usr/bin/python3";
const MAX_BUFFER = 64 << 20;

/** Bytes on disk of a model's graphs (a variant's files and the data files they reference). */
async function graphBytes(dir: string, files: string[]): Promise<number> {
  const names = new Set((await readdir(dir)).filter((f) => files.some((g) => f === g || f === `${g}.data`)));
  let total = 0;
  for (const f of names) total += (await stat(path.join(dir, f))).size;
  return total;
}

/** PREFIX.pixels.f32 (pickrank's preprocessing of the PNGs) and PREFIX.ids.json (77 ids), read by both sides. */
async function writeInputs(prefix: string, pngs: Buffer[], modelDir: string, prompt: string): Promise<void> {
  const px = await Promise.all(pngs.map((b) => preprocessImage(b)));
  const all = new Float32Array(px.length * px[0]!.length);
  px.forEach((p, i) => all.set(p, i * p.length));
  await writeFile(`${prefix}.pixels.f32`, new Uint8Array(all.buffer));
  const m = await readManifest(modelDir);
  const tok = await ClipTokenizer.fromDir(path.join(modelDir, m.tokenizer.dir));
  await writeFile(`${prefix}.ids.json`, JSON.stringify(Array.from(tok.encode(prompt))));
}

async function runPickrank(label: string, dir: string, graph: string, o: ScoringBenchOptions, prefix: string): Promise<ScoringResult> {
  const child = path.join(HERE, "scoring-child.ts");
  const args = ["--conditions=development", "--import", "tsx", child, "--model", dir, "--graph", graph, "--inputs", prefix];
  const { stdout } = await run(process.execPath, [...args, "--ns", o.ns.join(","), "--repeats", String(o.repeats)], {
    maxBuffer: MAX_BUFFER,
  });
  const r = JSON.parse(stdout.trim().split("\n").pop()!) as ScoringResult & { graph: string };
  const m = await readManifest(dir);
  const v = r.graph === "standard" ? undefined : m.variants?.[r.graph as "fused" | "fused-no-mha"];
  // A fused variant reads its own files and the standard graphs' data files (the weights it shares).
  const bytes = v
    ? (await graphBytes(dir, [v.vision, v.text])) + (await dataBytes(dir, m.graphs))
    : await graphBytes(dir, [m.graphs.vision, m.graphs.text]);
  return { ...r, label, diskBytes: bytes };
}

async function dataBytes(dir: string, g: { text: string; vision: string }): Promise<number> {
  let total = 0;
  for (const f of [`${g.text}.data`, `${g.vision}.data`]) if (existsSync(path.join(dir, f))) total += (await stat(path.join(dir, f))).size;
  return total;
}

/** clip_torch.py's lines → a ScoringResult ("weights loaded in X s", "vision N=n: X ms", "peak RSS X MB"). */
async function runTorch(mode: string, o: ScoringBenchOptions, prefix: string, blasDir: string | undefined): Promise<ScoringResult> {
  const out = path.join(o.tmp, `torch-${mode}.json`);
  const env = { ...process.env, ...(blasDir ? { LD_LIBRARY_PATH: blasDir } : {}) };
  const args = [path.join(SHARED_BENCH, "clip_torch.py"), "--hf", o.hf!, "--inputs", prefix, "--ns", o.ns.join(","), "--mode", mode];
  await run(PYTHON, [...args, "--threads", String(o.threads), "--repeats", String(o.repeats), "--out", out], {
    env,
    maxBuffer: MAX_BUFFER,
  });
  const r = JSON.parse(await (await import("node:fs/promises")).readFile(out, "utf8")) as {
    load_s: number;
    rows: { n: number; ms: number; scores: number[] }[];
    peak_rss_mb: number;
  };
  return { label: `torch ${mode}`, rows: r.rows, startMs: r.load_s * 1000, peakRssMb: r.peak_rss_mb };
}

/** Where an OpenBLAS libblas.so.3 is (Debian's torch runs the reference BLAS otherwise); $PICKRANK_BENCH_BLAS first. */
function openBlasDir(): string | undefined {
  const candidates = [process.env.PICKRANK_BENCH_BLAS, "/usr/lib/x86_64-linux-gnu/openblas-pthread"];
  return candidates.find((d) => d && existsSync(path.join(d, "libblas.so.3")));
}

const fmt = (x: number, d = 1) => x.toFixed(d);

/** Runs every configuration and prints the tables. Configurations that fail print their error and are left out. */
export async function benchScoringVariants(o: ScoringBenchOptions): Promise<ScoringResult[]> {
  const anyModel = o.models.fp32 ?? o.models.fp16 ?? o.models.int8;
  if (!anyModel) return [];
  const prefix = path.join(o.tmp, "inputs");
  await writeInputs(prefix, o.pngs, anyModel, "a lighthouse at dawn, oil painting");
  const configs: [string, string | undefined, string][] = [
    ["pickrank fp32", o.models.fp32, "standard"],
    ["pickrank fp32 fused", o.models.fp32, "fused"],
    ["pickrank fp32 fused-no-mha", o.models.fp32, "fused-no-mha"],
    ["pickrank fp16", o.models.fp16, "standard"],
    ["pickrank int8", o.models.int8, "standard"],
  ];
  const results: ScoringResult[] = [];
  for (const [label, dir, graph] of configs) {
    if (!dir) continue;
    try {
      results.push(await runPickrank(label, dir, graph, o, prefix));
      console.error(`${label}: done`);
    } catch (e) {
      console.error(`${label}: failed: ${(e as Error).message.slice(0, 300)}`);
    }
  }
  const blas = openBlasDir();
  if (o.hf) {
    for (const mode of o.torchModes) {
      try {
        results.push(await runTorch(mode, o, prefix, blas));
        console.error(`torch ${mode}: done`);
      } catch (e) {
        console.error(`torch ${mode}: failed: ${(e as Error).message.slice(0, 300)}`);
      }
    }
  }
  printTables(results, o, blas);
  return results;
}

function printTables(results: ScoringResult[], o: ScoringBenchOptions, blas: string | undefined): void {
  const byLabel = new Map(results.map((r) => [r.label, r]));
  const torch32 = byLabel.get("torch fp32");
  const torchBf = [...byLabel.values()].find((r) => r.label.startsWith("torch bf16"));
  const msPer = (r: ScoringResult | undefined, n: number) => {
    const row = r?.rows.find((x) => x.n === n);
    return row ? row.ms / n : undefined;
  };
  console.log(
    `\nScoring on the CPU: vision tower, batches of 8, ms per image (median of ${o.repeats}); ratio = torch ms / ours (> 1: faster than torch)` +
      `${blas ? `; torch on OpenBLAS (${blas})` : "; torch on the BLAS it links"}`,
  );
  const head = [
    "config",
    ...o.ns.flatMap((n) => [`N=${n} ms/img`, `vs torch fp32`, `vs torch bf16`]),
    "start-up s",
    "peak RSS MB",
    "disk MB",
  ];
  console.log(`| ${head.join(" | ")} |\n|${head.map(() => "---").join("|")}|`);
  for (const r of results) {
    const cells = o.ns.flatMap((n) => {
      const ms = msPer(r, n);
      const t32 = msPer(torch32, n);
      const tbf = msPer(torchBf, n);
      return [ms === undefined ? "—" : fmt(ms, 0), ms && t32 ? `${fmt(t32 / ms, 2)}×` : "—", ms && tbf ? `${fmt(tbf / ms, 2)}×` : "—"];
    });
    const disk = r.diskBytes === undefined ? "—" : fmt(r.diskBytes / 1e6, 0);
    console.log(`| ${[r.label, ...cells, fmt(r.startMs / 1000), fmt(r.peakRssMb, 0), disk].join(" | ")} |`);
  }
  if (torch32) {
    const n = o.ns.includes(8) ? 8 : o.ns[0]!;
    const ref = torch32.rows.find((x) => x.n === n)!.scores;
    console.log(`\nScores against torch fp32 (N=${n}): max |Δscore| in logit units (scores ≈ ${fmt(Math.max(...ref.map(Math.abs)))})`);
    for (const r of results) {
      const s = r.rows.find((x) => x.n === n)?.scores;
      if (s) console.log(`  ${r.label}: ${Math.max(...s.map((v, i) => Math.abs(v - ref[i]!))).toExponential(2)}`);
    }
  }
}

/**
 * `pnpm bench` preprocessing rows: pickrank's path (one decode with sharp, the exact bicubic port in
 * WebAssembly SIMD, normalize) on the main thread and on its worker pool with every core, the same with the
 * JavaScript resample (one worker, and the pool), against the reference's
 * PIL + numpy (../shared/bench/pre_py.py, one process, and a process pool over every core), on the
 * same photo-like 1024² PNGs (../shared/bench/gen_pngs.py when Python is there), in the same run.
 * Rounds are interleaved so that the machine's load hits every row alike. Prints a table.
 */
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { CLIP_PREPROCESS, preprocessImage } from "../src/index.ts";
import { defaultPreprocessWorkers, PreprocessPool } from "../src/preprocess/worker-pool.ts";

const run = promisify(execFile);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Writes `count` photo-like PNGs with gen_pngs.py and returns their paths, or undefined without Python. */
export async function photoPngs(opts: { python: string; shared: string; dir: string; count: number }): Promise<string[] | undefined> {
  try {
    await mkdir(opts.dir, { recursive: true });
    await run(opts.python, [path.join(opts.shared, "gen_pngs.py"), opts.dir, String(opts.count)]);
    return (await readdir(opts.dir)).filter((f) => f.endsWith(".png")).map((f) => path.join(opts.dir, f));
  } catch (e) {
    console.error(`gen_pngs.py did not run (${(e as Error).message.split("\n")[0]}); using the bench's own PNGs`);
    return undefined;
  }
}

async function pil(opts: { python: string; shared: string; dir: string; n: number; mode: string }): Promise<number> {
  const { stdout } = await run(opts.python, [path.join(opts.shared, "pre_py.py"), opts.dir, String(opts.n), opts.mode]);
  const m = /([\d.]+) ms\/image \(wall\)/.exec(stdout);
  if (!m) throw new Error(`pre_py.py printed no ms/image: ${stdout}`);
  return Number(m[1]);
}

/**
 * Times each path over the images (`rounds` interleaved rounds; wall time per image), with PIL rows
 * when `pngDir` holds gen_pngs.py's files and Python runs. Prints the table with ratios to PIL serial.
 */
export async function benchPreprocessVsPil(opts: {
  pngs: Buffer[];
  pngDir: string | undefined;
  rounds: number;
  python: string;
  shared: string;
}): Promise<void> {
  const cores = os.availableParallelism();
  const workers = defaultPreprocessWorkers();
  const pool = new PreprocessPool(Math.max(1, workers));
  // The same pool and one worker with the JavaScript resample (the WebAssembly kernels' reference and
  // fallback): their workers are started under PICKRANK_RESAMPLE=js, which a worker reads from its copy
  // of the environment, taken when it starts.
  const jsPool = new PreprocessPool(Math.max(1, workers));
  const jsOne = new PreprocessPool(1);
  const n = opts.pngs.length;
  const rows: { name: string; fn: () => Promise<number> }[] = [
    {
      name: "pickrank, main thread, one at a time",
      fn: async () => {
        const t = performance.now();
        for (const b of opts.pngs) await preprocessImage(b);
        return (performance.now() - t) / n;
      },
    },
    {
      name: `pickrank, pool of ${Math.max(1, workers)} worker thread(s), all at once (Scorer default)`,
      fn: async () => {
        const t = performance.now();
        await Promise.all(opts.pngs.map((b) => pool.run(b, CLIP_PREPROCESS)));
        return (performance.now() - t) / n;
      },
    },
    {
      name: "pickrank, JavaScript resample (PICKRANK_RESAMPLE=js), one worker thread, one at a time",
      fn: async () => {
        const t = performance.now();
        for (const b of opts.pngs) await jsOne.run(b, CLIP_PREPROCESS);
        return (performance.now() - t) / n;
      },
    },
    {
      name: `pickrank, JavaScript resample (PICKRANK_RESAMPLE=js), pool of ${Math.max(1, workers)} worker thread(s), all at once`,
      fn: async () => {
        const t = performance.now();
        await Promise.all(opts.pngs.map((b) => jsPool.run(b, CLIP_PREPROCESS)));
        return (performance.now() - t) / n;
      },
    },
  ];
  const firstPil = rows.length;
  if (opts.pngDir) {
    const dir = opts.pngDir;
    rows.push(
      { name: "PIL + numpy (pre_py.py), one process", fn: () => pil({ ...opts, dir, n, mode: "serial" }) },
      { name: `PIL + numpy (pre_py.py), pool of ${cores} processes`, fn: () => pil({ ...opts, dir, n, mode: `pool:${cores}` }) },
    );
  }
  try {
    await Promise.all(opts.pngs.map((b) => pool.run(b, CLIP_PREPROCESS))); // warm-up: workers started, code compiled
    const env = process.env.PICKRANK_RESAMPLE;
    process.env.PICKRANK_RESAMPLE = "js";
    const jsWarm = Promise.all([...opts.pngs.map((b) => jsPool.run(b, CLIP_PREPROCESS)), jsOne.run(opts.pngs[0]!, CLIP_PREPROCESS)]);
    if (env === undefined) delete process.env.PICKRANK_RESAMPLE;
    else process.env.PICKRANK_RESAMPLE = env;
    await jsWarm;
    await preprocessImage(opts.pngs[0]!);
    const load0 = os.loadavg()[0]!;
    const samples = rows.map(() => [] as number[]);
    for (let r = 0; r < opts.rounds; r++) for (const [i, row] of rows.entries()) samples[i]!.push(await row.fn());
    const pilSerial = opts.pngDir ? median(samples[firstPil]!) : undefined;
    console.log(
      `\nPreprocessing, ${n} × 1024² PNG → [3,224,224] float32, wall ms per image (median of ${opts.rounds} interleaved rounds; ` +
        `${cores} cores, load average ${load0.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)})`,
    );
    console.log("| path | ms/image | PIL one process ÷ this |");
    console.log("|---|---|---|");
    for (const [i, row] of rows.entries()) {
      const ms = median(samples[i]!);
      console.log(`| ${row.name} | ${ms.toFixed(1)} | ${pilSerial === undefined ? "—" : `${(pilSerial / ms).toFixed(2)}×`} |`);
    }
  } finally {
    await Promise.all([pool.close(), jsPool.close(), jsOne.close()]);
  }
}

/** The PNG files of a folder, read. */
export async function readPngs(files: string[]): Promise<Buffer[]> {
  return Promise.all(files.map((f) => readFile(f)));
}

/**
 * `pnpm bench` start-up rows: how long until a converted model's sessions are ready, against PyTorch
 * loading the same model.safetensors (../shared/bench/clip_torch.py's loader), in the same run. Every
 * measurement is a fresh process (startup-child.ts, torch_load.py), the configurations interleaved
 * round by round so that a change in the machine's load hits all of them alike; the files are in the
 * page cache for every row (each is read once before timing). Prints a table; asserts nothing.
 */
import { execFile } from "node:child_process";
import { createReadStream, existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { convertModel } from "../src/index.ts";

const run = promisify(execFile);
const here = import.meta.dirname;

interface Row {
  name: string;
  /** startup-child.ts mode, or "torch". */
  mode: string;
  dir: string;
  note: string;
}

interface Sample {
  readyS: number;
  firstScoreS?: number;
  peakRssMb: number;
  importS?: number;
}

async function child(row: Row, hf: string, shared: string, python: string): Promise<Sample> {
  const { stdout } =
    row.mode === "torch"
      ? await run(python, [path.join(here, "torch_load.py"), shared, hf], { maxBuffer: 1 << 20 })
      : await run(
          process.execPath,
          ["--conditions=development", "--import", "tsx", path.join(here, "startup-child.ts"), row.dir, row.mode],
          { maxBuffer: 1 << 20, env: { ...process.env, ORT_DISABLE_TELEMETRY: "1" } },
        );
  const line = stdout.trim().split("\n").pop() ?? "{}";
  const j = JSON.parse(line) as Sample & { loadS?: number };
  return row.mode === "torch" ? { readyS: j.loadS!, peakRssMb: j.peakRssMb, importS: j.importS! } : j;
}

/** Reads every file of a folder once, so that all rows start from the page cache. */
async function warm(dir: string): Promise<void> {
  for (const f of ["text.onnx", "text.onnx.data", "vision.onnx", "vision.onnx.data", "model.safetensors"]) {
    const p = path.join(dir, f);
    if (!existsSync(p)) continue;
    // In chunks: readFile stops at 2 GiB.
    for await (const _ of createReadStream(p, { highWaterMark: 1 << 24 }));
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Converts `hf` twice (the old layout, text graph inline; and the current one, external data for both
 * graphs), then times each start-up configuration `rounds` times, interleaved, and prints the table.
 */
export async function benchStartup(opts: { hf: string; tmp: string; rounds: number; python: string; shared: string }): Promise<void> {
  const inline = path.join(opts.tmp, "startup-inline");
  const external = path.join(opts.tmp, "startup-external");
  await convertModel(opts.hf, { out: inline, externalDataThreshold: 2_000_000_000 });
  await convertModel(opts.hf, { out: external });
  const rows: Row[] = [
    { name: "PyTorch: clip_torch.py loads model.safetensors", mode: "torch", dir: opts.hf, note: "baseline" },
    { name: "main thread, one after the other, text inline", mode: "main-serial", dir: inline, note: "pickrank before" },
    { name: "worker threads, both at once, text inline", mode: "worker-concurrent", dir: inline, note: "" },
    { name: "main thread, one after the other, external data", mode: "main-serial", dir: external, note: "" },
    { name: "worker threads, both at once, external data", mode: "worker-concurrent", dir: external, note: "pickrank now" },
    { name: "same, prepackWeights false (rank of < 17 images)", mode: "worker-no-prepack", dir: external, note: "slower runs" },
  ];
  for (const d of [inline, external, opts.hf]) await warm(d);
  const load0 = os.loadavg()[0]!;
  const samples = rows.map(() => [] as Sample[]);
  for (let r = 0; r < opts.rounds; r++) {
    for (const [i, row] of rows.entries()) {
      try {
        samples[i]!.push(await child(row, opts.hf, opts.shared, opts.python));
      } catch (e) {
        console.error(`start-up row "${row.name}" failed: ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }
  const torchReady = median(samples[0]!.map((s) => s.readyS));
  console.log(
    `\nStart-up, PickScore-sized fp32 (${rows.length} configurations × ${opts.rounds} rounds, interleaved, each a fresh process; ` +
      `${os.cpus().length} cores, load average ${load0.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)})`,
  );
  console.log("| configuration | sessions ready s | ÷ torch load | ready + first text and 1-image vision run s | peak RSS MB | note |");
  console.log("|---|---|---|---|---|---|");
  for (const [i, row] of rows.entries()) {
    const s = samples[i]!;
    if (s.length === 0) {
      console.log(`| ${row.name} | — | — | — | — | failed |`);
      continue;
    }
    const ready = median(s.map((x) => x.readyS));
    const first = s[0]!.firstScoreS === undefined ? "—" : median(s.map((x) => x.firstScoreS!)).toFixed(2);
    const note = row.mode === "torch" ? `import torch ${median(s.map((x) => x.importS!)).toFixed(1)} s more` : row.note;
    console.log(
      `| ${row.name} | ${ready.toFixed(2)} | ${(ready / torchReady).toFixed(2)} | ${first} | ${median(s.map((x) => x.peakRssMb)).toFixed(0)} | ${note} |`,
    );
  }
}

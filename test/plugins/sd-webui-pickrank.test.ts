/**
 * The A1111 / Forge extension (plugins/sd-webui-pickrank) against the real `pickrank serve` with the tiny
 * model: its Python tests inside the stub of A1111's processing loop (plugins/sd-webui-pickrank/tests),
 * then `pickrank rank` on the files they saved, which must print the numbers their infotexts carry; and
 * the Python ports of the CLI's prompt cleaning and number formatting, checked against the TypeScript.
 * Needs a python3 with torch, numpy and PIL (Debian's python3-torch, python3-numpy, python3-pil, which
 * .ci/run installs): skipped, saying so, without one, and failing in CI.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer } from "@pickrank/core";
import { formatProb, formatScore } from "@pickrank/selector";
import { startServer, type PickrankServer } from "@pickrank/server";
import { runCli } from "../helpers/cli.ts";
import { referenceDir, repoRoot } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

const pluginDir = path.join(repoRoot, "plugins", "sd-webui-pickrank");

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, ...opts.env }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 280_000);
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** A python3 with what A1111 has (torch, numpy, PIL): PICKRANK_PYTHON, Debian's /usr/bin/python3, python3. */
async function a1111Python(): Promise<string | undefined> {
  for (const py of [process.env["PICKRANK_PYTHON"], "/usr/bin/python3", "python3"]) {
    if (!py) continue;
    const r = await run(py, ["-c", "import torch, numpy, PIL.Image"], { timeoutMs: 60_000 }).catch(() => undefined);
    if (r?.code === 0) return py;
  }
  return undefined;
}
const python = await a1111Python();
const why = python
  ? ""
  : " (skipped: no python3 with torch, numpy and PIL; Debian python3-torch python3-numpy python3-pil, which .ci/run installs)";

/** An A1111 infotext's last line as {key: value}, quoted values unquoted (A1111's parse_generation_parameters). */
function infotextFields(infotext: string): Record<string, string> {
  const last = infotext.trim().split("\n").at(-1)!;
  const out: Record<string, string> = {};
  for (const m of last.matchAll(/\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)/g)) {
    out[m[1]!] = m[2]!.startsWith('"') ? (JSON.parse(m[2]!) as string) : m[2]!;
  }
  return out;
}

interface Saved {
  file: string;
  seed: number;
  prompt: string;
  infotext: string;
  score: number | null;
}

let scorer: Scorer | undefined;
let server: PickrankServer | undefined;
let tmp: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-a1111-"));
  if (!python) return;
  scorer = await Scorer.create({ model: await tinyModel(), device: "cpu", preprocessWorkers: 1 });
  server = await startServer({ host: "127.0.0.1", port: 0, scorer });
}, 180_000);

afterAll(async () => {
  await server?.close();
  await scorer?.dispose();
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

describe.skipIf(!python && !process.env["CI"])(`sd-webui-pickrank in A1111's processing loop${why}`, () => {
  it("the extension's Python tests pass against pickrank serve", async () => {
    if (!python) throw new Error("Expected a python3 with torch, numpy and PIL in CI (.ci/run installs Debian's) but none was found");
    const res = await run(python, [path.join(pluginDir, "tests", "test_extension.py"), "-v"], {
      env: {
        PICKRANK_TEST_URL: server!.url!,
        PICKRANK_TEST_OUT: tmp,
        PICKRANK_TEST_IMAGES: path.join(referenceDir, "images"),
        PICKRANK_URL: undefined,
        PICKRANK_TOKEN: undefined,
      },
    });
    expect(res.stderr, res.stdout).toMatch(/Ran 1\d tests in/);
    expect(res.stderr).toMatch(/\nOK\n/);
    expect(res.code, res.stderr).toBe(0);
  }, 300_000);

  it("pickrank rank on the saved files prints the PickScore, prob and rank their infotexts carry", async () => {
    const manifest = JSON.parse(await readFile(path.join(tmp, "manifest.json"), "utf8")) as {
      jobs: { name: string; batches: Saved[][] }[];
    };
    expect(manifest.jobs.map((j) => j.name)).toEqual(["ranked", "prompts", "inpaint"]);
    const model = await tinyModel();
    let checked = 0;
    for (const job of manifest.jobs) {
      for (const batch of job.batches) {
        const byPrompt = new Map<string, Saved[]>();
        for (const s of batch) byPrompt.set(s.prompt, [...(byPrompt.get(s.prompt) ?? []), s]);
        for (const [prompt, saved] of byPrompt) {
          const res = await runCli([
            "rank",
            "--model",
            model,
            "--device",
            "cpu",
            "--prompt",
            prompt,
            "--json",
            ...saved.map((s) => s.file),
          ]);
          expect(res.code, res.stderr).toBe(0);
          const out = res.json<{ results: { file: string; score: number; prob: number; rank: number }[] }>();
          for (const s of saved) {
            const r = out.results.find((x) => x.file === s.file)!;
            const f = infotextFields(s.infotext);
            expect(f["PickScore"], `${job.name} ${s.file}`).toBe(formatScore(r.score));
            expect(f["PickScore prob"]).toBe(formatProb(r.prob));
            expect(f["PickScore rank"]).toBe(`${r.rank}/${saved.length}`);
            expect(Math.abs(s.score! - r.score)).toBeLessThanOrEqual(1e-5 * Math.abs(r.score));
            checked++;
          }
          // best first within the prompt, as the CLI orders them
          expect(saved.map((s) => s.file)).toEqual(out.results.map((r) => r.file));
        }
      }
    }
    expect(checked).toBe(8 + 4 + 2);
  }, 300_000);

  it("the Python port prints what formatScore and formatProb print", async () => {
    const numbers = [
      0.0625,
      21.0625,
      1.0005,
      2.5e-4,
      0.00005,
      -0.0625,
      -0.0004,
      0,
      0.99995,
      21.3415,
      1e-7,
      123.4565,
      ...randomNumbers(2000),
    ];
    const res = await run(python!, [path.join(pluginDir, "tests", "parity.py")], { input: JSON.stringify({ numbers }) });
    expect(res.code, res.stderr).toBe(0);
    const got = JSON.parse(res.stdout) as { scores: string[]; probs: string[] };
    expect(got.scores).toEqual(numbers.map(formatScore));
    expect(got.probs).toEqual(numbers.map(formatProb));
  }, 120_000);
});

/** A seeded generator (mulberry32), so the generated cases are the same on every run. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Scores and probabilities as the server sends them (float32 values as doubles), ties of 3 and 4 decimals included. */
function randomNumbers(n: number): number[] {
  const rnd = mulberry32(5);
  return Array.from({ length: n }, (_, i) => {
    const x = i % 2 === 0 ? (rnd() - 0.2) * 40 : rnd();
    return i % 3 === 0 ? Math.fround(x) : i % 5 === 0 ? Math.round(x * 16) / 16 + 0.0005 : x;
  });
}

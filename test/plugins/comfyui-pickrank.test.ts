/**
 * The ComfyUI node pack (plugins/comfyui-pickrank) with real torch tensors against the real server.
 *
 * The server is `pickrank serve`'s own code (startServer, the tiny model, a token, 127.0.0.1 on a free
 * port) in this process, so it stops with the test file. The pack's Python tests
 * (plugins/comfyui-pickrank/tests/test_nodes.py) run once under Debian's python3-torch and leave, for
 * each parity case, the PNGs that ComfyUI's SaveImage writes of the node's input tensors and the node's
 * results; here `pickrank rank` ranks those PNGs and both must agree: order, score and prob.
 * Where /usr/bin/python3 cannot import torch, numpy and PIL this file is skipped, saying so; in CI
 * (`.ci/run` installs python3-torch) it fails instead.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type PickrankServer } from "@pickrank/server";
import { runCli } from "../helpers/cli.ts";
import { repoRoot } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

const PYTHON = process.env["PICKRANK_TORCH_PYTHON"] ?? "/usr/bin/python3";
const TESTS = path.join(repoRoot, "plugins/comfyui-pickrank/tests/test_nodes.py");
const hasTorch = spawnSync(PYTHON, ["-c", "import torch, numpy, PIL.Image"]).status === 0;
const inCi = Boolean(process.env["CI"]);

/**
 * |node score − `pickrank rank` score|: both are the same ONNX graph on the same pixels, in different
 * batches (the server's dynamic batch, the CLI's own). Measured 0 on every case (onnxruntime-node 1.30,
 * CPU, tiny model). A pixel converted by rounding instead of SaveImage's truncation moves scores by 0.14 here.
 */
const SCORE_BOUND = 1e-6;
/** |node prob − `pickrank rank` prob|, the client's softmax included when a batch spans requests. Measured 0. */
const PROB_BOUND = 1e-9;

interface Ranked {
  index: number;
  score: number;
  prob: number;
  rank: number;
}
interface ParityCase {
  name: string;
  prompt: string;
  files: string[];
  node: Ranked[];
}

function runPython(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // Asynchronous: the server answering the Python side runs in this process's event loop.
    const child = spawn(PYTHON, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

if (!hasTorch && inCi) {
  it("EXPECTED FAILURE - /usr/bin/python3 imports torch, numpy and PIL (Debian python3-torch, python3-pil)", () => {
    expect.fail(`${PYTHON} cannot import torch, numpy and PIL: .ci/run installs python3-torch and python3-pil`);
  });
}

describe.skipIf(!hasTorch)("comfyui-pickrank node pack against pickrank serve", () => {
  let server: PickrankServer;
  let model: string;
  let tmp: string;
  let python: { code: number | null; stdout: string; stderr: string };

  beforeAll(async () => {
    model = await tinyModel();
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-comfyui-"));
    const token = randomBytes(24).toString("hex");
    server = await startServer({ model, device: "cpu", host: "127.0.0.1", port: 0, token, preprocessWorkers: 1 });
    python = await runPython([TESTS, "-v"], { PICKRANK_URL: server.url!, PICKRANK_TOKEN: token, PICKRANK_PARITY_DIR: tmp });
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
    await removeTinyModels();
  });

  it("the pack's Python tests pass, none skipped", () => {
    expect(python.code, python.stderr).toBe(0);
    const ran = /^Ran (\d+) tests? in/m.exec(python.stderr);
    expect(Number(ran?.[1])).toBeGreaterThanOrEqual(23);
    expect(python.stderr).toMatch(/^OK$/m);
  });

  it("node order, scores and probs equal `pickrank rank` on SaveImage's PNGs of the same tensors", async () => {
    const cases = JSON.parse(await readFile(path.join(tmp, "cases.json"), "utf8")) as ParityCase[];
    expect(cases.map((c) => c.name).sort()).toEqual(["fractional", "rgba", "split", "vae_crop"]);
    let maxScore = 0;
    let maxProb = 0;
    for (const c of cases) {
      const res = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", c.prompt, "--json", ...c.files]);
      expect(res.code, res.stderr).toBe(0);
      const cli = res.json<{ scorePrompt: string; results: { file: string; score: number; prob: number; rank: number }[] }>();
      expect(cli.scorePrompt).toBe(c.prompt);
      expect(c.node.map((r) => c.files[r.index]), c.name).toEqual(cli.results.map((r) => r.file));
      cli.results.forEach((r, i) => {
        const n = c.node[i]!;
        expect(n.rank).toBe(r.rank);
        maxScore = Math.max(maxScore, Math.abs(n.score - r.score));
        maxProb = Math.max(maxProb, Math.abs(n.prob - r.prob));
      });
    }
    console.log(`comfyui-pickrank parity: max |score diff| ${maxScore.toExponential(2)}, max |prob diff| ${maxProb.toExponential(2)}`);
    expect(maxScore).toBeLessThan(SCORE_BOUND);
    expect(maxProb).toBeLessThan(PROB_BOUND);
  });
});

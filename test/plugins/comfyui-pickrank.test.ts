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
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer, type PickrankServer } from "@pickrank/server";
import { coreObjectInfo } from "../fakes/comfyui-object-info.ts";
import { runCli } from "../helpers/cli.ts";
import { repoRoot } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";
import { apiWorkflowProblems, uiToApi, type ApiWorkflow, type NodeInfo, type UiWorkflow } from "./comfyui-workflows.ts";

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
  /** The text the node scored (prompt syntax removed as `pickrank rank` removes it). */
  scored: string;
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
    expect(Number(ran?.[1])).toBeGreaterThanOrEqual(34);
    expect(python.stderr).toMatch(/^OK$/m);
  });

  it("node order, scores and probs equal `pickrank rank` on SaveImage's PNGs of the same tensors", async () => {
    const cases = JSON.parse(await readFile(path.join(tmp, "cases.json"), "utf8")) as ParityCase[];
    expect(cases.map((c) => c.name).sort()).toEqual(["fractional", "rgba", "split", "syntax", "vae_crop"]);
    let maxScore = 0;
    let maxProb = 0;
    for (const c of cases) {
      // --prepack-weights: the server's arithmetic (weights packed at load). `rank` of a few images packs
      // them per run by default, a different fp32 summation order: 4.7e-6 apart here, inside the fp32 parity bound.
      const args = ["rank", "--model", model, "--device", "cpu", "--prepack-weights", "--prompt", c.prompt, "--json", ...c.files];
      const res = await runCli(args);
      expect(res.code, res.stderr).toBe(0);
      const cli = res.json<{ scorePrompt: string; results: { file: string; score: number; prob: number; rank: number }[] }>();
      expect(cli.scorePrompt).toBe(c.scored);
      expect(
        c.node.map((r) => c.files[r.index]),
        c.name,
      ).toEqual(cli.results.map((r) => r.file));
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

describe.skipIf(!hasTorch)("comfyui-pickrank workflows: the pack's example (UI format) and examples/ recipe (API format)", () => {
  let objectInfo: Record<string, NodeInfo>;
  const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(path.join(repoRoot, file), "utf8")) as T;

  beforeAll(async () => {
    const res = await runPython([TESTS, "--object-info"], {});
    expect(res.code, res.stderr).toBe(0);
    objectInfo = {
      ...(coreObjectInfo([]) as unknown as Record<string, NodeInfo>),
      ...(JSON.parse(res.stdout) as Record<string, NodeInfo>),
    };
  });

  it("the recipe's API workflow validates: PickScoreSelect's winners' latents go to the refine sampler", async () => {
    const wf = await readJson<ApiWorkflow>("examples/workflows/comfyui-select-refine.json");
    expect(apiWorkflowProblems(wf, objectInfo)).toEqual([]);
    const select = Object.entries(wf).find(([, n]) => n.class_type === "PickScoreSelect");
    expect(select).toBeDefined();
    const [id, node] = select!;
    expect(node.inputs).toMatchObject({ k: 2, latent: ["5", 0] });
    expect(
      Object.values(wf).some((n) => n.class_type === "LatentUpscaleBy" && JSON.stringify(n.inputs["samples"]) === JSON.stringify([id, 2])),
    ).toBe(true);
  });

  it("the example workflow (UI format) is the recipe's graph, widget values in the frontend's order", async () => {
    const ui = await readJson<UiWorkflow>("plugins/comfyui-pickrank/example_workflows/pickscore-select-refine.json");
    const { api, problems } = uiToApi(ui, objectInfo);
    expect(problems).toEqual([]);
    expect(apiWorkflowProblems(api, objectInfo)).toEqual([]);
    expect(api).toEqual(await readJson<ApiWorkflow>("examples/workflows/comfyui-select-refine.json"));
  });

  it("BAD CALL - a workflow with PickScoreSelect's widget values out of order is caught", async () => {
    const ui = await readJson<UiWorkflow>("plugins/comfyui-pickrank/example_workflows/pickscore-select-refine.json");
    const node = ui.nodes.find((n) => n.type === "PickScoreSelect")!;
    node.widgets_values = [node.widgets_values![1], node.widgets_values![0], ...node.widgets_values!.slice(2)];
    const { api } = uiToApi(ui, objectInfo);
    expect(apiWorkflowProblems(api, objectInfo)).toEqual([
      `${node.id}.prompt: 2 is not of type STRING`,
      `${node.id}.k: ${JSON.stringify(ui.nodes.find((n) => n.type === "PickScoreSelect")!.widgets_values![1])} is not of type INT`,
    ]);
  });
});

describe("comfyui-pickrank web extension (web/pickrank.js)", () => {
  interface Widget {
    name: string;
    value: string;
    inputEl?: { readOnly: boolean };
    serialize?: boolean;
    options: Record<string, unknown>;
  }
  interface Extension {
    name: string;
    beforeRegisterNodeDef(nodeType: { prototype: Record<string, unknown> }, nodeData: { name: string }): Promise<void>;
  }
  let extension: Extension;
  let dir: string;

  beforeAll(async () => {
    // The layout ComfyUI serves: /extensions/<pack>/pickrank.js imports ../../scripts/app.js and widgets.js.
    // Stand-ins there hand the extension a recording app and a STRING widget factory.
    dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-comfyui-web-"));
    await mkdir(path.join(dir, "extensions/comfyui-pickrank"), { recursive: true });
    await mkdir(path.join(dir, "scripts"));
    await copyFile(
      path.join(repoRoot, "plugins/comfyui-pickrank/web/pickrank.js"),
      path.join(dir, "extensions/comfyui-pickrank/pickrank.js"),
    );
    await writeFile(path.join(dir, "scripts/app.js"), "export const app = globalThis.__pickrankTestApp;\n");
    await writeFile(path.join(dir, "scripts/widgets.js"), "export const ComfyWidgets = globalThis.__pickrankTestWidgets;\n");
    const g = globalThis as Record<string, unknown>;
    g["__pickrankTestApp"] = { registerExtension: (e: Extension) => (extension = e) };
    g["__pickrankTestWidgets"] = {
      STRING: (node: { widgets?: Widget[] }, name: string) => {
        const widget: Widget = { name, value: "", inputEl: { readOnly: false }, options: {} };
        (node.widgets ??= []).push(widget);
        return { widget };
      },
    };
    await import(pathToFileURL(path.join(dir, "extensions/comfyui-pickrank/pickrank.js")).href);
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows the node's ui.text after it runs, in one read-only box kept out of the workflow and the prompt", async () => {
    expect(extension.name).toBe("pickrank.PickScoreScores");
    const calls: unknown[] = [];
    const nodeType = { prototype: { onExecuted: (o: unknown) => calls.push(o) } as Record<string, unknown> };
    await extension.beforeRegisterNodeDef(nodeType, { name: "PickScoreSelect" });
    const node = Object.create(nodeType.prototype) as { widgets?: Widget[]; onExecuted(o: unknown): void };
    node.widgets = [{ name: "prompt", value: "a fox", options: {} }];
    node.onExecuted({ text: ["1. image 2: score 21.342, prob 0.4100", "second batch"], pickscore: [] });
    node.onExecuted({ text: ["1. image 0: score 19.000, prob 1.0000"] });
    expect(calls).toHaveLength(2);
    expect(node.widgets.map((w) => w.name)).toEqual(["prompt", "pickscore_scores"]);
    const shown = node.widgets[1]!;
    expect(shown.value).toBe("1. image 0: score 19.000, prob 1.0000");
    expect(shown.inputEl?.readOnly).toBe(true);
    expect(shown.serialize).toBe(false);
    expect(shown.options["serialize"]).toBe(false);
  });

  it("joins the text of a node called once per batch of a list, and leaves other node types alone", async () => {
    const nodeType = { prototype: {} as Record<string, unknown> };
    await extension.beforeRegisterNodeDef(nodeType, { name: "PickScoreRank" });
    const node = Object.create(nodeType.prototype) as { widgets?: Widget[]; onExecuted(o: unknown): void };
    node.onExecuted({ text: ["batch one", "batch two"] });
    expect(node.widgets?.[0]?.value).toBe("batch one\n\nbatch two");
    const other = { prototype: {} as Record<string, unknown> };
    await extension.beforeRegisterNodeDef(other, { name: "KSampler" });
    expect(other.prototype["onExecuted"]).toBeUndefined();
  });
});

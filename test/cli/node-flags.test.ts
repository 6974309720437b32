/**
 * --prompt-node, --negative-node, --seed-node, --batch-node, --output-node, --sampler-node: parsed into the
 * ComfyUI backend's node overrides, and end to end through `pickrank best-of` against the fake ComfyUI.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ComfyWorkflow } from "@pickrank/adapters";
import { nodeOverridesFromFlags } from "../../packages/cli/src/node-flags.ts";
import { customClass } from "../fakes/comfyui-object-info.ts";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { runCli } from "../helpers/cli.ts";
import { sharedDir } from "../helpers/paths.ts";
import { tinyModel } from "../helpers/tiny-model.ts";

describe("nodeOverridesFromFlags", () => {
  it("maps each flag to its override, one value as a string and several as a list", () => {
    expect(nodeOverridesFromFlags({}, "comfyui")).toBeUndefined();
    expect(
      nodeOverridesFromFlags(
        {
          promptNode: ["6", "15.text"],
          negativeNode: ["Negative"],
          seedNode: ["194"],
          batchNode: ["5"],
          outputNode: ["Final save"],
          samplerNode: ["11"],
        },
        "comfyui",
      ),
    ).toEqual({ positive: ["6", "15.text"], negative: "Negative", seed: "194", latent: "5", output: "Final save", sampler: "11" });
  });

  it("BAD CALL - refuses node flags for another backend, and two --batch-node", () => {
    expect(() => nodeOverridesFromFlags({ promptNode: ["6"] }, "a1111")).toThrow(
      /Expected --prompt-node only with --backend comfyui .* but the backend is a1111/,
    );
    expect(() => nodeOverridesFromFlags({ batchNode: ["5", "6"] }, "comfyui")).toThrow(
      /Expected one --batch-node .* but received 2: "5", "6"/,
    );
  });
});

/** A hires pass with its own detail prompt, and a custom saver as the only output: runnable on the fake. */
const TWO_PROMPTS: ComfyWorkflow = {
  "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "sd15.safetensors" } },
  "5": { class_type: "EmptyLatentImage", inputs: { width: 64, height: 64, batch_size: 1 } },
  "6": { class_type: "CLIPTextEncode", inputs: { text: "a harbour", clip: ["4", 1] }, _meta: { title: "Positive" } },
  "7": { class_type: "CLIPTextEncode", inputs: { text: "blurry", clip: ["4", 1] } },
  "3": {
    class_type: "KSampler",
    inputs: {
      seed: 1,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 1,
      model: ["4", 0],
      positive: ["6", 0],
      negative: ["7", 0],
      latent_image: ["5", 0],
    },
  },
  "10": { class_type: "LatentUpscaleBy", inputs: { upscale_method: "nearest-exact", scale_by: 1, samples: ["3", 0] } },
  "15": { class_type: "CLIPTextEncode", inputs: { text: "fine detail", clip: ["4", 1] }, _meta: { title: "Detail prompt" } },
  "11": {
    class_type: "KSampler",
    inputs: {
      seed: 1,
      steps: 2,
      cfg: 7,
      sampler_name: "euler",
      scheduler: "normal",
      denoise: 0.5,
      model: ["4", 0],
      positive: ["15", 0],
      negative: ["7", 0],
      latent_image: ["10", 0],
    },
  },
  "8": { class_type: "VAEDecode", inputs: { samples: ["11", 0], vae: ["4", 2] } },
  "20": { class_type: "SaveImageWithMetaData", inputs: { filename_prefix: "final", images: ["8", 0] } },
};

describe("pickrank best-of with node flags (fake ComfyUI, tiny model)", () => {
  let fake: FakeComfyUI;
  let model: string;
  let tmp: string;
  let workflowFile: string;
  beforeAll(async () => {
    const saver = customClass(
      "SaveImageWithMetaData",
      [
        ["images", "IMAGE"],
        ["filename_prefix", "STRING"],
      ],
      [],
      { outputNode: true },
    );
    [fake, model] = await Promise.all([startFakeComfyUI({ nodeClasses: { SaveImageWithMetaData: saver } }), tinyModel()]);
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-node-flags-"));
    workflowFile = path.join(tmp, "two-prompts.json");
    await writeFile(workflowFile, JSON.stringify(TWO_PROMPTS));
  });
  afterAll(async () => {
    await fake.close();
    await rm(tmp, { recursive: true, force: true });
  });

  const bestOf = (extra: string[]) =>
    runCli([
      "best-of",
      "--prompt",
      "a red fox",
      "-n",
      "2",
      "--seed",
      "40",
      "--workflow",
      workflowFile,
      "--url",
      fake.url,
      "--model",
      model,
      "--device",
      "cpu",
      "--json",
      "--quiet",
      ...extra,
    ]);

  it("writes the prompt into the first pass only, and reads the images from the custom saver", async () => {
    const before = fake.prompts.length;
    const r = await bestOf([]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ ranked: unknown[] }>().ranked).toHaveLength(2);
    const sent = fake.prompts.slice(before).map((p) => p.prompt);
    expect(sent.map((p) => [p["6"]!.inputs.text, p["15"]!.inputs.text])).toEqual([
      ["a red fox", "fine detail"],
      ["a red fox", "fine detail"],
    ]);
  });

  it("--prompt-node by title and --output-node by id send the prompt where the user says", async () => {
    const before = fake.prompts.length;
    const r = await bestOf(["--prompt-node", "Detail prompt", "--output-node", "20", "--seed-node", "3"]);
    expect(r.code, r.stderr).toBe(0);
    const sent = fake.prompts.slice(before).map((p) => p.prompt);
    expect(sent.map((p) => [p["6"]!.inputs.text, p["15"]!.inputs.text, p["3"]!.inputs.seed, p["11"]!.inputs.seed])).toEqual([
      ["a harbour", "a red fox", 40, 1],
      ["a harbour", "a red fox", 41, 1],
    ]);
  });

  it("a refusal names the graph's own nodes and the flag (exit 2), and that flag settles it", async () => {
    const regional = path.join(sharedDir, "workflows", "15-attention-couple-regional-prompts.json");
    const r = await runCli(["best-of", "--prompt", "a red fox", "--workflow", regional, "--url", "http://127.0.0.1:9"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'Name the one your prompt replaces with --prompt-node 6 (from code: nodes.positive = "6"), or --prompt-node 10 [BAD_INPUT]',
    );
    // Past detection, the next thing that fails is the stopped server: the flag reached the backend.
    const settled = await runCli([
      "best-of",
      "--prompt",
      "a red fox",
      "--workflow",
      regional,
      "--url",
      "http://127.0.0.1:9",
      "--prompt-node",
      "6",
    ]);
    expect(settled.stderr).toContain("[BACKEND_UNREACHABLE]");
    const a1111 = await runCli(["best-of", "--prompt", "x", "--backend", "a1111", "--prompt-node", "6", "--url", "http://127.0.0.1:9"]);
    expect(a1111.code).toBe(2);
    expect(a1111.stderr).toContain("Expected --prompt-node only with --backend comfyui");
  });
});

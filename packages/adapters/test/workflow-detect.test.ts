import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TXT2IMG_WORKFLOW, applyWorkflow, detectWorkflow, parseWorkflow } from "@pickrank/adapters";
import { FLUX, HIRES_FIX, SD15, SD15_WEBSOCKET, SDXL_REFINER, TWO_SAMPLERS } from "./workflows.ts";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

describe("detectWorkflow", () => {
  it("finds prompt, negative, seed, batch, size, settings, checkpoint and output in the SD1.5 graph", () => {
    const plan = detectWorkflow(SD15);
    expect(plan.samplers).toEqual(["3"]);
    expect(plan.positive).toEqual([{ node: "6", input: "text" }]);
    expect(plan.negative).toEqual([{ node: "7", input: "text" }]);
    expect(plan.seed).toEqual([{ node: "3", input: "seed" }]);
    expect(plan.batch).toEqual({ node: "5", input: "batch_size" });
    expect(plan.width).toEqual({ node: "5", input: "width" });
    expect(plan.steps).toEqual([{ node: "3", input: "steps" }]);
    expect(plan.cfg).toEqual([{ node: "3", input: "cfg" }]);
    expect(plan.checkpoint).toEqual({ node: "4", input: "ckpt_name" });
    expect(plan.outputs).toEqual([{ node: "9", classType: "SaveImage" }]);
    expect(plan.websocketOutput).toBe(false);
  });

  it("treats SDXL base + refiner as one chain: both text encoders, the base's seed (the refiner adds no noise), the refined output", () => {
    const plan = detectWorkflow(SDXL_REFINER);
    expect(plan.samplers).toEqual(["10", "11"]);
    expect(plan.positive).toEqual([
      { node: "6", input: "text_g" },
      { node: "6", input: "text_l" },
      { node: "15", input: "text" },
    ]);
    expect(plan.negative.map((r) => r.node)).toEqual(["7", "7", "16"]);
    expect(plan.seed).toEqual([{ node: "10", input: "noise_seed" }]);
    expect(plan.checkpoint).toEqual({ node: "4", input: "ckpt_name" }); // the base loader, not the refiner's
    expect(plan.outputs).toEqual([{ node: "19", classType: "SaveImage" }]);
  });

  it("follows Flux's guider → FluxGuidance → CLIPTextEncode, RandomNoise seed and scheduler steps", () => {
    const plan = detectWorkflow(FLUX);
    expect(plan.samplers).toEqual(["13"]);
    expect(plan.positive).toEqual([{ node: "6", input: "text" }]);
    expect(plan.negative).toEqual([]); // BasicGuider has no negative conditioning
    expect(plan.seed).toEqual([{ node: "25", input: "noise_seed" }]);
    expect(plan.steps).toEqual([{ node: "17", input: "steps" }]);
    expect(plan.samplerName).toEqual([{ node: "16", input: "sampler_name" }]);
    expect(plan.scheduler).toEqual([{ node: "17", input: "scheduler" }]);
    expect(plan.cfg).toEqual([]);
    expect(plan.batch).toEqual({ node: "27", input: "batch_size" });
    expect(plan.checkpoint).toEqual({ node: "12", input: "unet_name" });
  });

  it("handles Flux with CLIPTextEncodeFlux and a CFGGuider whose negative is a ConditioningZeroOut", () => {
    const wf = structuredClone(FLUX);
    wf["6"] = { class_type: "CLIPTextEncodeFlux", inputs: { clip_l: "a fox", t5xxl: "a fox", guidance: 3.5, clip: ["11", 0] } };
    wf["40"] = { class_type: "ConditioningZeroOut", inputs: { conditioning: ["6", 0] } };
    wf["22"] = { class_type: "CFGGuider", inputs: { model: ["30", 0], positive: ["26", 0], negative: ["40", 0], cfg: 1 } };
    const plan = detectWorkflow(wf);
    expect(plan.positive).toEqual([
      { node: "6", input: "clip_l" },
      { node: "6", input: "t5xxl" },
    ]);
    expect(plan.negative).toEqual([]); // zeroed-out conditioning has no text to set
    expect(plan.cfg).toEqual([{ node: "22", input: "cfg" }]);
  });

  it("rejects two independent samplers with different prompts, naming both and how to choose", () => {
    let err: unknown;
    try {
      detectWorkflow(TWO_SAMPLERS);
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: "BAD_INPUT" });
    const msg = (err as Error).message;
    expect(msg).toContain("2 independent samplers with different positive prompts");
    expect(msg).toContain('KSampler #3 (positive prompt from CLIPTextEncode #6 "a cat")');
    expect(msg).toContain('KSampler #13 (positive prompt from CLIPTextEncode #16 "a dog")');
    expect(msg).toContain('Name its output with --output-node 9 (from code: nodes.output = "9") or the sampler with --sampler-node 3');
    expect(msg).not.toContain("options.nodes");

    for (const nodes of [{ sampler: "13" }, { output: "19" }, { positive: "16" }]) {
      const plan = detectWorkflow(TWO_SAMPLERS, nodes);
      expect(plan.positive).toEqual([{ node: "16", input: "text" }]);
      expect(plan.seed).toEqual([{ node: "13", input: "seed" }]);
      expect(plan.outputs).toEqual([{ node: "19", classType: "SaveImage" }]);
    }
  });

  it("handles a hires-fix chain, a prompt behind a primitive node, and ignores the first pass preview", () => {
    const plan = detectWorkflow(HIRES_FIX);
    expect(plan.samplers).toEqual(["3", "11"]);
    expect(plan.positive).toEqual([{ node: "20", input: "value" }]);
    expect(plan.seed).toEqual([
      { node: "3", input: "seed" },
      { node: "11", input: "seed" },
    ]);
    expect(plan.outputs).toEqual([{ node: "14", classType: "SaveImage" }]);
  });

  it("prefers SaveImageWebsocket outputs and flags them", () => {
    const plan = detectWorkflow(SD15_WEBSOCKET);
    expect(plan.outputs).toEqual([{ node: "9", classType: "SaveImageWebsocket" }]);
    expect(plan.websocketOutput).toBe(true);
  });

  it("takes explicit node ids, with or without the input name", () => {
    const plan = detectWorkflow(SDXL_REFINER, { positive: ["6.text_g", "15"], seed: "10", output: "19" });
    expect(plan.positive).toEqual([
      { node: "6", input: "text_g" },
      { node: "15", input: "text" },
    ]);
    expect(plan.seed).toEqual([{ node: "10", input: "noise_seed" }]);
    expect(() => detectWorkflow(SD15, { positive: "99" })).toThrow(/for --prompt-node but it has no node "99"/);
    expect(() => detectWorkflow(SD15, { positive: "6.nope" })).toThrow(/has no input "nope"/);
  });

  it("says what is missing: no sampler, no seed, no output, two outputs", () => {
    expect(() => detectWorkflow({ "1": { class_type: "SaveImage", inputs: {} } })).toThrow(/Expected a workflow with a sampler node/);
    const noSeed = structuredClone(FLUX);
    noSeed["25"] = { class_type: "DisableNoise", inputs: {} };
    expect(() => detectWorkflow(noSeed)).toThrow(/none of SamplerCustomAdvanced #13 adds noise .* N candidates would be identical/);
    const noOut = structuredClone(SD15);
    delete noOut["9"];
    expect(() => detectWorkflow(noOut)).toThrow(
      /Expected a node that saves or previews the images of KSampler #3 .* \(nodes at the end of its branch: VAEDecode #8 "VAE Decode"\); add one after its VAEDecode, or name it with --output-node <id or title>/,
    );
    const twoOut = structuredClone(SD15);
    twoOut["10"] = { class_type: "SaveImage", inputs: { filename_prefix: "b", images: ["8", 0] } };
    expect(() => detectWorkflow(twoOut)).toThrow(
      /2 nodes save the images of KSampler #3: SaveImage #9 "Save Image" \(saves\); SaveImage #10 \(saves\)\. .*--output-node 9 .*, or --output-node 10$/,
    );
  });
});

describe("parseWorkflow", () => {
  it("rejects the UI format with the way to export the API format", () => {
    expect(() => parseWorkflow({ nodes: [], links: [], version: 0.4 })).toThrow(/UI format .*Export \(API\)/);
  });
  it("rejects a node without class_type, naming it", () => {
    expect(() => parseWorkflow({ "3": { inputs: {} } })).toThrow(/node entry "3.class_type"/);
  });
  it("accepts JSON text and reports bad JSON", () => {
    expect(Object.keys(parseWorkflow(JSON.stringify(SD15)))).toContain("3");
    expect(() => parseWorkflow("{nope")).toThrow(/does not parse/);
  });
});

describe("applyWorkflow", () => {
  it("writes prompt, negative, seed, batch and params without touching the original", () => {
    const plan = detectWorkflow(SDXL_REFINER);
    const wf = applyWorkflow(SDXL_REFINER, plan, {
      prompt: "a red fox",
      negativePrompt: "ugly",
      seed: 42,
      batchSize: 1,
      params: {
        steps: 30,
        cfgScale: 5,
        width: 832,
        height: 1216,
        sampler: "dpmpp_2m",
        checkpoint: "my_xl.safetensors",
        extra: { "10": { end_at_step: 24 } },
      },
    });
    expect(wf["6"]!.inputs.text_g).toBe("a red fox");
    expect(wf["6"]!.inputs.text_l).toBe("a red fox");
    expect(wf["15"]!.inputs.text).toBe("a red fox");
    expect(wf["16"]!.inputs.text).toBe("ugly");
    expect(wf["10"]!.inputs.noise_seed).toBe(42);
    expect(wf["11"]!.inputs.noise_seed).toBe(0); // add_noise disabled: its seed changes nothing
    expect(wf["10"]!.inputs.steps).toBe(30);
    expect(wf["11"]!.inputs.cfg).toBe(5);
    expect(wf["5"]!.inputs).toMatchObject({ width: 832, height: 1216, batch_size: 1 });
    expect(wf["4"]!.inputs.ckpt_name).toBe("my_xl.safetensors");
    expect(wf["12"]!.inputs.ckpt_name).toBe("sd_xl_refiner_1.0.safetensors");
    expect(wf["10"]!.inputs.end_at_step).toBe(24);
    expect(SDXL_REFINER["6"]!.inputs.text_g).toBe("evening sunset scenery blue sky");
  });

  it("keeps a {prompt} template around the text", () => {
    const tpl = structuredClone(SD15);
    tpl["6"]!.inputs.text = "masterpiece, {prompt}, 8k";
    const wf = applyWorkflow(tpl, detectWorkflow(tpl), { prompt: "a cat", seed: 1 });
    expect(wf["6"]!.inputs.text).toBe("masterpiece, a cat, 8k");
  });

  it("refuses params the workflow has no place for", () => {
    expect(() => applyWorkflow(FLUX, detectWorkflow(FLUX), { prompt: "x", seed: 1, params: { cfgScale: 4 } })).toThrow(
      /Cannot set cfgScale/,
    );
    // BasicGuider carries no negative conditioning: a negative prompt would be dropped silently.
    expect(() => applyWorkflow(FLUX, detectWorkflow(FLUX), { prompt: "x", negativePrompt: "y", seed: 1 })).toThrow(
      /^Cannot set the negative prompt: the negative conditioning of sampler 13 leads to no text .*--negative-node/,
    );
    expect(() => applyWorkflow(SD15, detectWorkflow(SD15), { prompt: "x", seed: 1, params: { extra: { "77": { a: 1 } } } })).toThrow(
      /no node "77"/,
    );
  });
});

describe("the shipped default workflow", () => {
  it("is the same graph as examples/workflows/txt2img-sd.json and detects cleanly", () => {
    const file = JSON.parse(readFileSync(path.join(repoRoot, "examples/workflows/txt2img-sd.json"), "utf8")) as unknown;
    expect(file).toEqual(DEFAULT_TXT2IMG_WORKFLOW);
    const plan = detectWorkflow(file);
    expect(plan.checkpoint).toEqual({ node: "4", input: "ckpt_name" });
    expect(DEFAULT_TXT2IMG_WORKFLOW["4"]!.inputs.ckpt_name).toBe(""); // filled from the server at run time
  });
});

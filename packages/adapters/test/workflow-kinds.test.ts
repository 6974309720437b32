/**
 * Workflow detection on the kinds of graph users really run: one describe per kind of fault seen on
 * published API workflows, each on graphs of that shape, read from the graph alone and with the server's
 * /object_info where that is what tells.
 */
import { describe, expect, it } from "vitest";
import { applyWorkflow, detectWorkflow, type ObjectInfo } from "@pickrank/adapters";
import { coreObjectInfo, customClass } from "../../../test/fakes/comfyui-object-info.ts";
import { expectActionable, reading, refs, refusal } from "./workflow-helpers.ts";
import {
  CONTROLNET_FACE_DETAILER,
  CUSTOM_ENCODER,
  CUSTOM_SAVER_WITH_PREVIEWS,
  EFFICIENT,
  INPAINT_SECOND_PROMPT,
  OUTPUT_BY_FLAG,
  PIPE_REFINER,
  QWEN_EDIT,
  REGIONAL,
  STRING_NODE_PROMPT,
  STYLER,
  TWO_SAVERS,
  UNRECOGNISED_BASE,
  XLABS,
} from "./workflow-shapes.ts";
import { SDXL_REFINER } from "./workflows.ts";

const core = coreObjectInfo(["sd15.safetensors"]) as ObjectInfo;
const info = (...extra: Record<string, unknown>[]): ObjectInfo =>
  ({ ...core, ...Object.fromEntries(extra.map((c) => [c.name as string, c])) }) as ObjectInfo;

describe("kind 1: a second, different prompt is never overwritten silently", () => {
  it("writes an inpaint chain's prompt into the first pass only and says the region prompt is kept", () => {
    const plan = detectWorkflow(INPAINT_SECOND_PROMPT);
    expect(plan.samplers).toEqual(["3", "10"]);
    expect(refs(plan.positive)).toEqual(["6.text"]);
    expect(refs(plan.negative)).toEqual(["7.text"]); // shared by both passes
    expect(plan.notes.join("\n")).toMatch(
      /CLIPTextEncode #15 "Region prompt" with text "a red sailing boat" keeps its own positive text.*--prompt-node 6 --prompt-node 15/,
    );
    const wf = applyWorkflow(INPAINT_SECOND_PROMPT, plan, { prompt: "a lighthouse", seed: 3 });
    expect(wf["6"]!.inputs.text).toBe("a lighthouse");
    expect(wf["15"]!.inputs.text).toBe("a red sailing boat");
    expect([wf["3"]!.inputs.seed, wf["10"]!.inputs.seed]).toEqual([3, 3]); // both passes add noise
  });

  it("writes both passes when the user names both", () => {
    const plan = detectWorkflow(INPAINT_SECOND_PROMPT, { positive: ["6", "Region prompt"] });
    expect(refs(plan.positive)).toEqual(["6.text", "15.text"]);
    expect(plan.notes).toEqual([]);
  });

  it("refuses regional prompts combined into one conditioning, naming both texts and ids", () => {
    const err = refusal(() => detectWorkflow(REGIONAL));
    expect(err.code).toBe("BAD_INPUT");
    expect(err.message).toContain(
      'combines 2 prompts with different text: CLIPTextEncode #6 "Left" with text "a forest in winter", CLIPTextEncode #10 "Right"',
    );
    expect(expectActionable(err.message, REGIONAL)).toEqual(["6", "10"]);
    expect(refs(detectWorkflow(REGIONAL, { positive: "Right" }).positive)).toEqual(["10.text"]);
  });

  it("still writes base and refiner when they hold the same text, and a {prompt} template agrees with any text", () => {
    expect(refs(detectWorkflow(SDXL_REFINER).positive)).toEqual(["6.text_g", "6.text_l", "15.text"]);
    const tpl = structuredClone(INPAINT_SECOND_PROMPT);
    tpl["15"]!.inputs.text = "{prompt}, detailed";
    expect(refs(detectWorkflow(tpl).positive)).toEqual(["6.text", "15.text"]);
  });

  it("writes no negative over two different first-pass negatives, and says so when --negative is given", () => {
    const wf = structuredClone(REGIONAL);
    wf["17"] = { class_type: "CLIPTextEncode", inputs: { text: "snow", clip: ["4", 1] } };
    wf["18"] = { class_type: "ConditioningCombine", inputs: { conditioning_1: ["7", 0], conditioning_2: ["17", 0] } };
    wf["3"]!.inputs.negative = ["18", 0];
    const plan = detectWorkflow(wf, { positive: "6" });
    expect(plan.negative).toEqual([]);
    expect(plan.notes[0]).toMatch(
      /^negative texts differ \(CLIPTextEncode #7 "Negative" with text "lowres", CLIPTextEncode #17 with text "snow"\); name one with --negative-node 7/,
    );
    expect(() => applyWorkflow(wf, plan, { prompt: "x", negativePrompt: "y", seed: 1 })).toThrow(
      /^Cannot set the negative prompt: negative texts differ/,
    );
    expect(refs(detectWorkflow(wf, { positive: "6", negative: "17" }).negative)).toEqual(["17.text"]);
  });
});

describe("kind 2: prompt text the walk must follow", () => {
  it("follows a string node whose text input is not called text, graph only and by /object_info type", () => {
    expect(refs(detectWorkflow(STRING_NODE_PROMPT).positive)).toEqual(["20.string_a"]);
    const joinStrings = customClass(
      "JoinStrings",
      [
        ["separator", "STRING"],
        ["string_a", "STRING", { multiline: true }],
        ["string_b", "STRING"],
        ["mode", ["join", "lines"]],
      ],
      ["STRING"],
    );
    expect(refs(detectWorkflow(STRING_NODE_PROMPT, {}, { objectInfo: info(joinStrings) }).positive)).toEqual(["20.string_a"]);
  });

  it("takes a styler's positive text for the prompt and its negative text for the negative", () => {
    expect(reading(detectWorkflow(STYLER))).toMatchObject({ positive: ["21.text_positive"], negative: ["21.text_negative"] });
    const styler = customClass(
      "SDXLPromptStyler",
      [
        ["text_positive", "STRING"],
        ["text_negative", "STRING"],
        ["style", ["base"]],
        ["log_prompt", "BOOLEAN"],
      ],
      ["STRING", "STRING"],
      {
        outputName: ["text_positive", "text_negative"],
      },
    );
    expect(reading(detectWorkflow(STYLER, {}, { objectInfo: info(styler) }))).toMatchObject({
      positive: ["21.text_positive"],
      negative: ["21.text_negative"],
    });
  });

  it("reads ComfyUI's TextEncodeQwenImageEditPlus, whose text input is prompt, and its custom saver", () => {
    const plan = detectWorkflow(QWEN_EDIT);
    expect(reading(plan)).toEqual({
      positive: ["111.prompt"],
      negative: ["110.prompt"],
      seed: ["3.seed"],
      batch: undefined,
      outputs: ["60"],
    });
  });

  it("finds an encoder only /object_info describes (a STRING input into CONDITIONING); the graph alone refuses, naming text nodes", () => {
    const err = refusal(() => detectWorkflow(CUSTOM_ENCODER));
    expect(err.message).toMatch(/lead to a node holding prompt text .* \(nodes holding text: T5Conditioner #6\)/);
    expectActionable(err.message, CUSTOM_ENCODER);
    const t5 = customClass(
      "T5Conditioner",
      [
        ["clip", "CLIP"],
        ["description", "STRING", { multiline: true }],
      ],
      ["CONDITIONING"],
    );
    expect(reading(detectWorkflow(CUSTOM_ENCODER, {}, { objectInfo: info(t5) }))).toMatchObject({
      positive: ["6.description"],
      negative: ["7.description"],
    });
  });

  it("writes a prompt held as a literal input of a loader that outputs the conditioning (Efficient Loader)", () => {
    const plan = detectWorkflow(EFFICIENT);
    expect(reading(plan)).toEqual({ positive: ["2.positive"], negative: ["2.negative"], seed: ["4.seed"], batch: "2", outputs: ["5"] });
    expect(refs([plan.width!, plan.height!])).toEqual(["2.empty_latent_width", "2.empty_latent_height"]);
    const wf = applyWorkflow(EFFICIENT, plan, { prompt: "a dog", negativePrompt: "blurry", seed: 1, params: { width: 512 } });
    expect([wf["2"]!.inputs.positive, wf["2"]!.inputs.negative, wf["2"]!.inputs.empty_latent_width]).toEqual(["a dog", "blurry", 512]);
  });

  it("follows pipe samplers to their loader's linked text nodes", () => {
    expect(reading(detectWorkflow(PIPE_REFINER))).toMatchObject({ positive: ["187.text"], negative: ["188.text"], batch: "197" });
  });
});

describe("kind 3: outputs beyond three class names", () => {
  it("picks a custom saver over previews of the same and of another image", () => {
    expect(detectWorkflow(CUSTOM_SAVER_WITH_PREVIEWS).outputs).toEqual([{ node: "15", classType: "SaveImageWithMetaData" }]);
  });

  it("lists every candidate, previews included, and suggests the final saver when two savers compete", () => {
    const err = refusal(() => detectWorkflow(TWO_SAVERS));
    expect(err.message).toContain(
      '2 nodes save the images of KSampler #3: SaveImageWithMetaData #15 "Final save" (saves); WAS Image Save #17',
    );
    expect(err.message).toContain(
      'besides: PreviewImage #12 "Quick look" (previews); PreviewImage #14 (previews, images from ImageBlend #13)',
    );
    for (const id of ["12", "14", "15", "17"]) expect(err.message).toContain(`#${id}`);
    expect(err.message).toContain('WAS Image Save #17 "Upscaled save" (saves, images from ImageScaleBy #16)');
    expect(expectActionable(err.message, TWO_SAVERS)).toEqual(["17", "15"]);
    expect(detectWorkflow(TWO_SAVERS, { output: "Final save" }).outputs).toEqual([{ node: "15", classType: "SaveImageWithMetaData" }]);
  });

  it("uses /object_info's output_node: an output found only by its flag, a dangling image node left out", () => {
    const err = refusal(() => detectWorkflow(OUTPUT_BY_FLAG));
    expect(err.message).toContain("(nodes at the end of its branch: HttpPublisher #20, ImageInvert #21)");
    expectActionable(err.message, OUTPUT_BY_FLAG);
    const publisher = customClass(
      "HttpPublisher",
      [
        ["pixels", "IMAGE"],
        ["endpoint", "STRING"],
      ],
      [],
      { outputNode: true },
    );
    const invert = customClass("ImageInvert", [["image", "IMAGE"]], ["IMAGE"]);
    expect(detectWorkflow(OUTPUT_BY_FLAG, {}, { objectInfo: info(publisher, invert) }).outputs).toEqual([
      { node: "20", classType: "HttpPublisher" },
    ]);
  });
});

describe("kind 4: custom samplers, and seeds that change the image", () => {
  it("recognises a sampler by its seed and steps (XlabsSampler's conditioning / neg_conditioning)", () => {
    const plan = detectWorkflow(XLABS);
    expect(plan.samplers).toEqual(["3"]);
    expect(reading(plan)).toEqual({
      positive: ["5.clip_l", "5.t5xxl"],
      negative: ["19.clip_l", "19.t5xxl"],
      seed: ["3.noise_seed"],
      batch: "6",
      outputs: ["23"],
    });
  });

  it("varies only the base pipe sampler's seed (the refiner adds no noise) and takes the refiner's own saved image", () => {
    const plan = detectWorkflow(PIPE_REFINER);
    expect(plan.samplers).toEqual(["194", "195"]);
    expect(refs(plan.seed)).toEqual(["194.noise_seed"]);
    expect(plan.outputs).toEqual([{ node: "195", classType: "ttN pipeKSamplerAdvanced" }]);
    expect(plan.notes).toContain('seed of ttN pipeKSamplerAdvanced #195 "Refiner" left as is: it adds no noise');
  });

  it("follows a ControlNet's positive / negative outputs and counts a face detailer as the chain's last sampler", () => {
    const plan = detectWorkflow(CONTROLNET_FACE_DETAILER);
    expect(plan.samplers).toEqual(["3", "20"]);
    expect(reading(plan)).toEqual({ positive: ["6.text"], negative: ["7.text"], seed: ["3.seed", "20.seed"], batch: "5", outputs: ["21"] });
  });

  it("leaves the SDXL refiner's seed alone when add_noise is disabled", () => {
    const plan = detectWorkflow(SDXL_REFINER);
    expect(refs(plan.seed)).toEqual(["10.noise_seed"]);
    expect(applyWorkflow(SDXL_REFINER, plan, { prompt: "x", seed: 42 })["11"]!.inputs.noise_seed).toBe(0);
  });

  it("refuses when no sampler of the chain adds noise, naming the seed that would; naming samplers extends the chain upstream", () => {
    const err = refusal(() => detectWorkflow(UNRECOGNISED_BASE));
    expect(err.message).toContain("none of KSamplerAdvanced #11 adds noise");
    expect(err.message).toContain("N candidates would be identical");
    expect(expectActionable(err.message, UNRECOGNISED_BASE)).toEqual(["3"]);
    expect(refs(detectWorkflow(UNRECOGNISED_BASE, { seed: "3" }).seed)).toEqual(["3.noise_seed"]);
    const named = detectWorkflow(UNRECOGNISED_BASE, { sampler: ["11", "3"] });
    expect(named.samplers).toEqual(["3", "11"]);
    expect(refs(named.seed)).toEqual(["3.noise_seed"]);
    expect(named.outputs.map((o) => o.node)).toEqual(["9"]);
  });

  it("reads the same plans with the core classes' /object_info as from the graph alone", () => {
    for (const wf of [XLABS, PIPE_REFINER, SDXL_REFINER, INPAINT_SECOND_PROMPT, EFFICIENT, QWEN_EDIT]) {
      expect(detectWorkflow(wf, {}, { objectInfo: core })).toEqual(detectWorkflow(wf));
    }
  });
});

describe("kind 5: refusals a user can act on", () => {
  it("names nodes by title, title.input, or id.input, and refuses an ambiguous title listing the ids", () => {
    expect(refs(detectWorkflow(INPAINT_SECOND_PROMPT, { positive: "Positive.text", negative: "Negative" }).positive)).toEqual(["6.text"]);
    expect(refs(detectWorkflow(PIPE_REFINER, { seed: "Base" }).seed)).toEqual(["194.noise_seed"]);
    const twin = structuredClone(INPAINT_SECOND_PROMPT);
    twin["15"]!._meta = { title: "Positive" };
    const err = refusal(() => detectWorkflow(twin, { positive: "Positive" }));
    expect(err.message).toContain(
      'Expected one node for --prompt-node but the title "Positive" fits 2: CLIPTextEncode #6 "Positive", CLIPTextEncode #15 "Positive"',
    );
    expectActionable(err.message, twin);
  });

  it("answers an unknown node with the nodes of the user's graph that fit the flag", () => {
    const err = refusal(() => detectWorkflow(INPAINT_SECOND_PROMPT, { positive: "99" }));
    expect(err.message).toContain(
      'Expected a node id or title of the workflow for --prompt-node but it has no node "99"; nodes that fit: CLIPTextEncode #6 "Positive"',
    );
    expect(err.details).toMatchObject({ parameter: "--prompt-node" });
    const out = refusal(() => detectWorkflow(TWO_SAVERS, { output: "Save" }));
    expect(out.message).toMatch(
      /nodes that fit: SaveImageWithMetaData #15 "Final save", WAS Image Save #17 "Upscaled save", PreviewImage #12 "Quick look", PreviewImage #14$/,
    );
  });

  it("never suggests a node the graph does not have, nor options.nodes, in any refusal", () => {
    const cases: [Record<string, { class_type: string; inputs: Record<string, unknown> }>, () => unknown][] = [
      [REGIONAL, () => detectWorkflow(REGIONAL)],
      [TWO_SAVERS, () => detectWorkflow(TWO_SAVERS)],
      [OUTPUT_BY_FLAG, () => detectWorkflow(OUTPUT_BY_FLAG)],
      [UNRECOGNISED_BASE, () => detectWorkflow(UNRECOGNISED_BASE)],
      [CUSTOM_ENCODER, () => detectWorkflow(CUSTOM_ENCODER)],
    ];
    for (const [wf, fn] of cases) expectActionable(refusal(fn).message, wf);
  });
});

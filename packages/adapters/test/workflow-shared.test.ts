/**
 * Detection on the eleven published API workflows in ../shared/workflows/: the reading their README
 * states is right, or the refusal names the real choice with ids from that graph.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applyWorkflow, detectWorkflow, parseWorkflow, type ComfyWorkflow, type NodeOverrides, type ObjectInfo } from "@pickrank/adapters";
import { coreObjectInfo } from "../../../test/fakes/comfyui-object-info.ts";
import { sharedDir } from "../../../test/helpers/paths.ts";
import { expectActionable, reading, refusal } from "./workflow-helpers.ts";

function load(file: string): ComfyWorkflow {
  return parseWorkflow(readFileSync(path.join(sharedDir, "workflows", file), "utf8"));
}

type Reading = ReturnType<typeof reading>;

/** The README's right reading of each file that has one (03: 11 may follow 3's seed; 18: the base's seed only). */
const READINGS: [string, Reading][] = [
  ["01-sd15-txt2img-basic.json", { positive: ["6.text"], negative: ["7.text"], seed: ["3.seed"], batch: "5", outputs: ["9"] }],
  [
    "03-sd15-hiresfix-latent-two-saves.json",
    { positive: ["6.text"], negative: ["7.text"], seed: ["3.seed", "11.seed"], batch: "5", outputs: ["12"] },
  ],
  [
    "04-sdxl-base-refiner-ksampleradvanced.json",
    { positive: ["6.text", "15.text"], negative: ["7.text", "16.text"], seed: ["10.noise_seed"], batch: "5", outputs: ["19"] },
  ],
  [
    "07-sdxl-turbo-samplercustom-preview.json",
    { positive: ["6.text"], negative: ["7.text"], seed: ["13.noise_seed"], batch: "5", outputs: ["25"] },
  ],
  [
    "09-flux-inpaint-cfgguider-stringfunction.json",
    { positive: ["35.text_a"], negative: ["131.clip_l", "131.t5xxl"], seed: ["25.noise_seed"], batch: "139", outputs: ["76"] },
  ],
  [
    "10-flux-xlabs-sampler-controlnet.json",
    { positive: ["5.clip_l", "5.t5xxl"], negative: ["19.clip_l", "19.t5xxl"], seed: ["3.noise_seed"], batch: "6", outputs: ["23"] },
  ],
  [
    "14-zimage-easyseed-two-pass-custom-saver.json",
    { positive: ["186.text"], negative: [], seed: ["194.seed"], batch: "185", outputs: ["195"] },
  ],
  [
    "18-ttn-pipe-sdxl-refiner.json",
    { positive: ["187.text"], negative: ["188.text"], seed: ["194.noise_seed"], batch: "197", outputs: ["195"] },
  ],
  [
    "25-sd15-clipseg-inpaint-second-prompt.json",
    { positive: ["6.text"], negative: ["7.text"], seed: ["3.seed", "10.seed"], batch: "5", outputs: ["17"] },
  ],
];

/** Files whose README names an ambiguity: the ids the refusal must offer, and an answer that settles it. */
const REFUSALS: [string, RegExp, string[], NodeOverrides, Partial<Reading>][] = [
  [
    "15-attention-couple-regional-prompts.json",
    /combines 2 prompts with different text: CLIPTextEncode #6 .*"a landscape at night", CLIPTextEncode #10 .*"a landscape at midday"/,
    ["6", "10"],
    { positive: "10" },
    { positive: ["10.text"], negative: ["7.text"], outputs: ["9"] },
  ],
  [
    "16-efficient-loader-rmbg-two-saves.json",
    /2 nodes save the images of KSampler \(Efficient\) #4: SaveImage #5 .*; SaveImage #10 .*images from BRIA_RMBG_Zho #9/,
    ["10", "5"],
    { output: "5" },
    {
      positive: ["2.positive"],
      negative: ["2.negative"],
      seed: ["4.seed"],
      batch: "2",
      outputs: ["5"],
    },
  ],
];

describe("detection on published API workflows (../shared/workflows)", () => {
  it.each(READINGS)("%s reads as its README says", (file, want) => {
    const wf = load(file);
    expect(reading(detectWorkflow(wf))).toEqual(want);
  });

  it.each(REFUSALS)(
    "%s refuses naming the real choice with its own ids, and the named choice reads right",
    (file, message, ids, answer, want) => {
      const wf = load(file);
      const err = refusal(() => detectWorkflow(wf));
      expect(err.code).toBe("BAD_INPUT");
      expect(err.message).toMatch(message);
      expect(expectActionable(err.message, wf)).toEqual(ids);
      expect(reading(detectWorkflow(wf, answer))).toMatchObject(want);
    },
  );

  it("writes the user's prompt only where the reading says: 25's region prompt and 14's LoRA text stay", () => {
    const inpaint = load("25-sd15-clipseg-inpaint-second-prompt.json");
    const wf = applyWorkflow(inpaint, detectWorkflow(inpaint), { prompt: "a lighthouse", seed: 7 });
    expect(wf["6"]!.inputs.text).toBe("a lighthouse");
    expect(wf["15"]!.inputs.text).toBe("a (sail ship in a bottle:1.2)");
    expect(wf["11"]!.inputs.text).toBe("bottle"); // CLIPSeg's mask query is no prompt
    const zimage = load("14-zimage-easyseed-two-pass-custom-saver.json");
    const z = applyWorkflow(zimage, detectWorkflow(zimage), { prompt: "a lighthouse", seed: 7 });
    expect(z["186"]!.inputs.text).toBe("a lighthouse");
    expect(z["196"]!.inputs.text).toBe(zimage["196"]!.inputs.text);
    expect(z["194"]!.inputs.seed).toBe(7);
  });

  it("reads every file the same with the core classes' /object_info (custom classes undescribed) as from the graph alone", () => {
    const info = coreObjectInfo(["sd15.safetensors"]) as ObjectInfo;
    for (const [file] of READINGS) {
      const wf = load(file);
      expect(detectWorkflow(wf, {}, { objectInfo: info }), file).toEqual(detectWorkflow(wf));
    }
  });
});

/**
 * `pickrank model verify`: a converted model (an int8 or fp16 conversion, or the fused variant) held
 * against a reference conversion of the same weights (fp32), on the user's own prompts and images: the
 * embedding cosines, the PickScore score error and whether each prompt's ranking of the images survives
 * (Kendall τ, same best image). What to run before trusting int8 with real weights.
 */
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { parseDevice, type DeviceOption } from "../options.ts";
import { renderTable, writeJson } from "../ui.ts";
import { expandImageArgs } from "./rank.ts";

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

interface VerifyCliOptions {
  model: string;
  reference: string;
  prompt: string[];
  device: DeviceOption;
  graph: "auto" | "standard" | "fused" | "fused-no-mha";
  json?: boolean;
}

const f = (x: number, digits = 4) => x.toFixed(digits);

/** Registers `model verify` under the `model` command. */
export function registerVerify(model: Command, ctx: CommandContext): void {
  model
    .command("verify")
    .description(
      "Compare a converted model (e.g. --dtype int8) with a reference conversion of the same weights (fp32) on your prompts and images: " +
        "embedding cosines, score error, and whether each prompt's ranking of the images stays the same (Kendall tau, same best image)",
    )
    .argument("<images...>", "images or folders of images (at least two, for a ranking)")
    .requiredOption("--model <dir>", "the converted model to check (for instance an int8 conversion)")
    .requiredOption("--reference <dir>", "the model to hold it against (the fp32 conversion of the same weights)")
    .requiredOption("--prompt <text>", "a prompt to rank the images for (repeat for several)", collect, [])
    .option("--device <device>", "device for both models: auto, cpu, webgpu or cuda", parseDevice, "cpu")
    .option("--graph <variant>", "graph variant of --model: auto, standard, fused or fused-no-mha", "auto")
    .option("--json", "print the report as JSON")
    .action(
      action(ctx, async (imageArgs: string[], opts: VerifyCliOptions) => {
        const { verifyModel } = await import("@pickrank/core");
        const { invalidParameter } = await import("@pickrank/contract");
        if (!["auto", "standard", "fused", "fused-no-mha"].includes(opts.graph)) {
          throw invalidParameter("--graph", "auto, standard, fused or fused-no-mha", opts.graph);
        }
        // commander counts the empty default list as given: the flag is required here.
        if (opts.prompt.length === 0) throw invalidParameter("--prompt", "at least one prompt (repeat --prompt for several)", 0);
        const images = await expandImageArgs(imageArgs);
        const r = await verifyModel({
          model: opts.model,
          reference: opts.reference,
          prompts: opts.prompt,
          images,
          device: opts.device,
          graph: opts.graph,
        });
        if (opts.json) {
          writeJson(ctx.io, { model: opts.model, reference: opts.reference, ...r });
          return;
        }
        const rows = [
          ["image embedding cosine", `min ${f(r.imageCosine.min, 6)}`, `mean ${f(r.imageCosine.mean, 6)}`],
          ["text embedding cosine", `min ${f(r.textCosine.min, 6)}`, `mean ${f(r.textCosine.mean, 6)}`],
          ["score error (logit units)", `max ${f(r.scoreError.maxAbs)}`, `mean ${f(r.scoreError.meanAbs)}`],
          ["probability error", `max ${f(r.probError.maxAbs)}`, ""],
          ["Kendall tau per prompt", `min ${f(r.kendallTau.min, 3)}`, `mean ${f(r.kendallTau.mean, 3)}`],
        ];
        ctx.io.stdout.write(renderTable(["", "", ""], rows));
        ctx.io.stdout.write(
          `${r.prompts} prompt(s) × ${r.images} image(s) on ${r.device} (${r.graphVariant} graphs): ` +
            `same best image for ${r.sameBest} of ${r.prompts} prompt(s); ` +
            (r.kendallTau.min === 1 ? "every ranking identical.\n" : "some rankings differ (tau < 1).\n"),
        );
      }),
    );
}

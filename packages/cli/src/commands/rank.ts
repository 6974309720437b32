import { Scorer } from "@pickrank/core";
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { parseDevice, parsePositiveInt, type DeviceOption } from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine, renderTable, writeJson } from "../ui.ts";

interface RankOptions {
  model?: string;
  prompt: string;
  device: DeviceOption;
  batchSize: number;
  json?: boolean;
}

export function registerRank(program: Command, ctx: CommandContext): void {
  program
    .command("rank")
    .description("Score images against one prompt with PickScore and print them best first")
    .argument("<images...>", "image files (PNG, JPEG, WebP, …) made for this prompt")
    .requiredOption("--prompt <text>", "the prompt the images were generated for")
    .option("--model <dir>", "converted model folder (default: the cached PickScore model, pulled on first use)")
    .option("--device <device>", "auto, cpu, webgpu or cuda; auto tries cuda, then webgpu, then cpu", parseDevice, "auto")
    .option("--batch-size <n>", "images per device run", parsePositiveInt, 8)
    .option("--json", 'print {"prompt","device","results":[{file,score,prob,rank}]} best first')
    .addHelpText("after", "\nScores compare images of the same prompt only; prob is the softmax of the scores over these images.")
    .action(
      action(ctx, async (images: string[], opts: RankOptions) => {
        const model = await resolveModel(ctx.io, opts.model, Boolean(opts.json));
        const scorer = await Scorer.create({ model, device: opts.device, batchSize: opts.batchSize });
        try {
          ctx.io.stderr.write(deviceLine(scorer));
          const ranked = await scorer.rank(opts.prompt, images);
          const results = ranked.map((r) => ({ file: images[r.index]!, score: r.score, prob: r.prob, rank: r.rank }));
          if (opts.json) {
            writeJson(ctx.io, { prompt: opts.prompt, device: scorer.device, results });
            return;
          }
          ctx.io.stdout.write(
            renderTable(
              ["rank", "score", "prob", "file"],
              results.map((r) => [String(r.rank), r.score.toFixed(3), r.prob.toFixed(4), r.file]),
              ["right", "right", "right", "left"],
            ),
          );
        } finally {
          await scorer.dispose();
        }
      }),
    );
}

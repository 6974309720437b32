import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { parseDevice, parsePositiveInt, type DeviceOption } from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine, ProgressBar, renderTable, writeJson } from "../ui.ts";

/** File extensions a folder argument expands to (what sharp decodes). */
export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"];

/**
 * Image arguments as files: a folder stands for the images directly inside it (by extension, in
 * name order; not recursive). Anything else is passed on as given, so a missing or broken file is
 * reported by the scorer with its name.
 */
export async function expandImageArgs(args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) {
    const st = await stat(arg).catch(() => undefined);
    if (!st?.isDirectory()) {
      out.push(arg);
      continue;
    }
    const names = (await readdir(arg, { withFileTypes: true }))
      .filter((d) => !d.name.startsWith(".") && (d.isFile() || d.isSymbolicLink()) && IMAGE_EXTENSIONS.includes(path.extname(d.name).toLowerCase()))
      .map((d) => d.name)
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    if (names.length === 0) {
      throw new PickrankError("BAD_INPUT", `Folder ${arg} holds no images; expected files ending in ${IMAGE_EXTENSIONS.join(", ")} directly inside it`, {
        details: { folder: arg },
      });
    }
    out.push(...names.map((n) => path.join(arg, n)));
  }
  return out;
}

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
    .argument("<images...>", "image files (PNG, JPEG, WebP, …) made for this prompt, or folders of them")
    .requiredOption("--prompt <text>", "the prompt the images were generated for")
    .option("--model <dir>", "converted model folder (default: the cached PickScore model, pulled on first use)")
    .option("--device <device>", "auto, cpu, webgpu or cuda; auto tries cuda, then webgpu, then cpu", parseDevice, "auto")
    .option("--batch-size <n>", "images per device run", parsePositiveInt, 8)
    .option("--json", 'print {"prompt","device","results":[{file,score,prob,rank}]} best first')
    .addHelpText("after", "\nScores compare images of the same prompt only; prob is the softmax of the scores over these images.")
    .action(
      action(ctx, async (args: string[], opts: RankOptions) => {
        const images = await expandImageArgs(args);
        const model = await resolveModel(ctx.io, opts.model, Boolean(opts.json));
        const { Scorer } = await import("@pickrank/core");
        const scorer = await Scorer.create({ model, device: opts.device, batchSize: opts.batchSize });
        try {
          ctx.io.stderr.write(deviceLine(scorer));
          const bar = new ProgressBar(ctx.io, "scoring", "items", Boolean(opts.json) || images.length <= scorer.batchSize);
          const ranked = await scorer.rank(opts.prompt, images, { onProgress: (done, total) => bar.update(done, total) }).finally(() => bar.finish());
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

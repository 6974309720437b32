import { writeFileAtomic } from "@pickrank/contract";
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { MAX_PIXELS_FLAGS, MAX_PIXELS_HELP, parseMaxPixels } from "../options.ts";
import { writeJson } from "../ui.ts";

export function registerPreprocess(program: Command, ctx: CommandContext): void {
  program
    .command("preprocess")
    .description("Decode, resize (bicubic, shortest edge 224), center-crop and normalize an image as CLIPImageProcessor does")
    .argument("<image>", "PNG, JPEG, WebP, … file")
    .requiredOption("--out <file>", "where to write float32 little-endian [3,224,224]")
    .option(MAX_PIXELS_FLAGS, MAX_PIXELS_HELP, parseMaxPixels)
    .option("--json", "print a summary as JSON")
    .action(
      action(ctx, async (image: string, opts: { out: string; maxPixels?: number; json?: boolean }) => {
        const { preprocessImage, CLIP_PREPROCESS } = await import("@pickrank/core");
        const px = await preprocessImage(image, opts.maxPixels === undefined ? undefined : { maxPixels: opts.maxPixels });
        await writeFileAtomic(opts.out, Buffer.from(px.buffer, px.byteOffset, px.byteLength));
        let sum = 0;
        for (const v of px) sum += v;
        const summary = { file: image, out: opts.out, shape: [3, CLIP_PREPROCESS.size, CLIP_PREPROCESS.size], mean: sum / px.length };
        if (opts.json) writeJson(ctx.io, summary);
        else
          ctx.io.stdout.write(
            `${opts.out}: float32 [3,${CLIP_PREPROCESS.size},${CLIP_PREPROCESS.size}], mean ${summary.mean.toFixed(4)}\n`,
          );
      }),
    );
}

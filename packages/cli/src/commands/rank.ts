import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { EXIT, PickrankError } from "@pickrank/contract";
// core and selector load in the action, once the arguments parsed: `--help` and usage errors stay fast.
import type { ImageFailure } from "@pickrank/core";
import type { formatProb, formatScore } from "@pickrank/selector";
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import {
  MAX_PIXELS_FLAGS,
  MAX_PIXELS_HELP,
  parseDevice,
  parseMaxPixels,
  parsePositiveInt,
  requirePrompt,
  type DeviceOption,
} from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine, ProgressBar, renderTable, writeJson } from "../ui.ts";

/** File extensions a folder argument expands to (what sharp decodes). */
export const IMAGE_EXTENSIONS = [".png", ".jpg", ".jpeg", ".webp", ".gif", ".tif", ".tiff", ".avif"];

/**
 * Image arguments as files: a folder stands for the images directly inside it (by extension, in
 * name order; not recursive). Other paths are passed on as given, so a broken file is reported by
 * the scorer with its name; paths that do not exist are NOT_FOUND here, before any model loads.
 * @throws NOT_FOUND naming every missing path; BAD_INPUT for a folder with no images.
 */
export async function expandImageArgs(args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const missing: string[] = [];
  for (const arg of args) {
    const st = await stat(arg).catch(() => undefined);
    if (!st) missing.push(arg);
    if (!st?.isDirectory()) {
      out.push(arg);
      continue;
    }
    const names = (await readdir(arg, { withFileTypes: true }))
      .filter(
        (d) =>
          !d.name.startsWith(".") && (d.isFile() || d.isSymbolicLink()) && IMAGE_EXTENSIONS.includes(path.extname(d.name).toLowerCase()),
      )
      .map((d) => d.name)
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
    if (names.length === 0) {
      throw new PickrankError(
        "BAD_INPUT",
        `Folder ${arg} holds no images; expected files ending in ${IMAGE_EXTENSIONS.join(", ")} directly inside it`,
        {
          details: { folder: arg },
        },
      );
    }
    out.push(...names.map((n) => path.join(arg, n)));
  }
  if (missing.length > 0) {
    const what = missing.length === 1 ? `${missing[0]} does not exist` : `these do not exist: ${missing.join(", ")}`;
    throw new PickrankError("NOT_FOUND", `Expected image files or folders but ${what}`, { details: { path: missing[0], missing } });
  }
  return out;
}

interface RankOptions {
  model?: string;
  prompt: string;
  device: DeviceOption;
  batchSize: number;
  maxPixels?: number;
  json?: boolean;
  scorePrompt?: string;
  scoreRawPrompt?: boolean;
  prepackWeights?: boolean;
}

/**
 * Up to this many images, `rank` leaves the CPU's weight packing to the runs (Scorer's prepackWeights
 * false): packing all weights at load costs ≈30 s on the PickScore-sized model on a loaded 2-core
 * machine (≈4 s quiet), each unpacked run ≈1.36× its packed time (docs/benchmarks.md, start-up).
 */
export const RANK_PREPACK_FROM_IMAGES = 17;

export function registerRank(program: Command, ctx: CommandContext): void {
  program
    .command("rank")
    .description("Score images against one prompt with PickScore and print them best first")
    .argument("<images...>", "image files (PNG, JPEG, WebP, …) made for this prompt, or folders of them")
    .requiredOption("--prompt <text>", "the prompt the images were generated for")
    .option("--model <dir>", "converted model folder (default: the cached PickScore model, pulled on first use)")
    .option("--device <device>", "auto, cpu, webgpu or cuda; auto tries cuda, then webgpu, then cpu", parseDevice, "auto")
    .option("--batch-size <n>", "images per device run", parsePositiveInt, 8)
    .option(MAX_PIXELS_FLAGS, MAX_PIXELS_HELP, parseMaxPixels)
    .option(
      "--score-prompt <text>",
      "score against this text instead of the prompt (default: the prompt without weights, <lora:…> tags, BREAK …)",
    )
    .option("--score-raw-prompt", "score against the prompt exactly as written, weights and tags included")
    .option(
      "--prepack-weights",
      `CPU: pack the model's weights at load (slower start, faster runs; the default from ${RANK_PREPACK_FROM_IMAGES} images on)`,
    )
    .option(
      "--no-prepack-weights",
      `CPU: pack weights as the runs need them (starts in seconds; the default below ${RANK_PREPACK_FROM_IMAGES} images)`,
    )
    .option("--json", 'print {"prompt","scorePrompt","device","results":[{file,score,prob,rank}],"failed":[{file,error}]} best first')
    .addHelpText(
      "after",
      "\nScores compare images of the same prompt only; prob is the softmax of the scores over the images scored.\n" +
        "A file that cannot be decoded does not stop the others: it is listed with its error and the exit code is 3 (partial).",
    )
    .action(
      action(ctx, async (args: string[], opts: RankOptions) => {
        requirePrompt(opts.prompt);
        const [{ Scorer }, { formatProb, formatScore, resolveScorePrompt }] = await Promise.all([
          import("@pickrank/core"),
          import("@pickrank/selector"),
        ]);
        // The scoring prompt (core/src/prompt/score-prompt.ts): checked before the model loads, its length after.
        const scoring = { prompt: opts.prompt, scorePrompt: opts.scorePrompt, raw: opts.scoreRawPrompt };
        resolveScorePrompt(scoring);
        const images = await expandImageArgs(args);
        const model = await resolveModel(ctx.io, opts.model, Boolean(opts.json));
        const scorer = await Scorer.create({
          model,
          device: opts.device,
          batchSize: opts.batchSize,
          prepackWeights: opts.prepackWeights ?? images.length >= RANK_PREPACK_FROM_IMAGES,
          ...(opts.maxPixels === undefined ? {} : { maxPixels: opts.maxPixels }),
        });
        try {
          ctx.io.stderr.write(deviceLine(scorer));
          const { text: scorePrompt, warnings } = resolveScorePrompt({ ...scoring, countTokens: (t) => scorer.countTokens(t) });
          for (const w of warnings) ctx.io.stderr.write(`pickrank: warning: ${w}\n`);
          const bar = new ProgressBar(ctx.io, "scoring", "items", Boolean(opts.json) || images.length <= scorer.batchSize);
          const onProgress = (done: number, total: number) => bar.update(done, total);
          const { ranked, failed } = await scorer.rankSettled(scorePrompt, images, { onProgress }).finally(() => bar.finish());
          if (ranked.length === 0) throw noneScored(images, failed);
          const results = ranked.map((r) => ({ file: images[r.index]!, score: r.score, prob: r.prob, rank: r.rank }));
          const failures = failed.map((f) => ({ file: images[f.index]!, error: f.error.toJSON(), reason: imageReason(f.error) }));
          printRanking(ctx, { ...opts, scorePrompt }, scorer.device, results, failures, { formatProb, formatScore });
          if (failures.length > 0) {
            const counts = `scored ${results.length} of ${images.length} images; ${failures.length} could not be read`;
            ctx.io.stderr.write(`pickrank: ${counts} (listed) [PARTIAL]\n`);
            ctx.exitCode = EXIT.PARTIAL;
          }
        } finally {
          await scorer.dispose();
        }
      }),
    );
}

interface RankRow {
  file: string;
  score: number;
  prob: number;
  rank: number;
}

/**
 * The ranking on stdout: JSON for programs, or a table and then the files that were not scored.
 * `opts.scorePrompt` is the text that was scored (the prompt when absent); `fmt`, selector's formatters.
 */
function printRanking(
  ctx: CommandContext,
  opts: RankOptions,
  device: string,
  results: RankRow[],
  failures: { file: string; error: { code: string; message: string }; reason: string }[],
  fmt: { formatProb: typeof formatProb; formatScore: typeof formatScore },
): void {
  const { formatProb: fmtProb, formatScore: fmtScore } = fmt;
  const scorePrompt = opts.scorePrompt ?? opts.prompt;
  if (opts.json) {
    const failed = failures.map((f) => ({ file: f.file, error: f.error }));
    writeJson(ctx.io, { prompt: opts.prompt, scorePrompt, device, results, ...(failed.length > 0 ? { failed } : {}) });
    return;
  }
  if (scorePrompt !== opts.prompt) ctx.io.stdout.write(`scored as: ${scorePrompt}\n`);
  ctx.io.stdout.write(
    renderTable(
      ["rank", "score", "prob", "file"],
      results.map((r) => [String(r.rank), fmtScore(r.score), fmtProb(r.prob), r.file]),
      ["right", "right", "right", "left"],
    ),
  );
  if (failures.length > 0) {
    ctx.io.stdout.write(`\nnot scored (${failures.length}):\n`);
    ctx.io.stdout.write(
      renderTable(
        ["file", "error"],
        failures.map((f) => [f.file, `${f.error.code}: ${f.reason}`]),
      ),
    );
  }
}

/** The decoder's own message, without the scorer's "Image #i (file): " prefix (the table names the file). */
function imageReason(e: PickrankError): string {
  return e.cause instanceof PickrankError ? e.cause.message : e.message;
}

/** Every image failed: one image's own error as it is; several: the first one's code, all listed. */
function noneScored(images: readonly string[], failed: readonly ImageFailure[]): PickrankError {
  const first = failed[0]!.error;
  if (failed.length === 1) return first;
  const list = failed.map((f) => `${images[f.index]}: ${f.error.message} [${f.error.code}]`).join("; ");
  return new PickrankError(first.code, `None of the ${images.length} images could be scored: ${list}`, {
    cause: first,
    details: { failed: failed.map((f) => ({ file: images[f.index], code: f.error.code })) },
  });
}

/**
 * `pickrank eval`: measure what selection gains, compare configurations, check PickScore against
 * human labels. Each subcommand writes one evaluation folder (`--out`): `eval.duckdb` (every candidate,
 * score and label, written as it arrives), `summary.json` and (once something is scored) `report.html`;
 * `eval run` adds `images/` and `candidates.csv`, `eval images` adds `candidates.csv` (see OUT_HELP).
 * - `eval run`: a prompt set × N seeds × named configurations, rendered on the servers and scored;
 * - `eval images`: images made elsewhere (HPSv2 benchmark folders or a manifest), scored;
 * - `eval pairs`: Pick-a-Pic-format pairs (Parquet or JSONL + images), scored against the labels.
 * A killed or interrupted command continues with the same command and `--resume`.
 */
import { InvalidArgumentError, Option, type Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { collect, parseDevice, parsePositiveInt } from "../options.ts";
import { runEvalImages, runEvalPairs, runEvalRun } from "./eval-actions.ts";

const collectList = (v: string, prev: string[]) => [
  ...prev,
  ...v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
];

function parseSeed(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError(`Expected a non-negative integer but received ${JSON.stringify(v)}.`);
  return n;
}

/** What each subcommand writes in --out (its help text, and the README's table). */
export const OUT_HELP = {
  run: "evaluation folder: eval.duckdb, images/ (the candidates), summary.json, candidates.csv, report.html",
  images: "evaluation folder: eval.duckdb, summary.json, candidates.csv, report.html (the images are not copied)",
  pairs: "evaluation folder: eval.duckdb, summary.json, report.html",
} as const;

/** The flags every eval subcommand has: folder (`out` says what it holds), resume, models, device, output mode. */
function addCommon(cmd: Command, judge: boolean, out: string): Command {
  cmd
    .requiredOption("--out <dir>", out)
    .option("--resume", "continue the run stored in --out (nothing stored is rendered or scored again)")
    .option("--model <dir>", "converted PickScore model folder (default: the cached one, pulled on first use)");
  if (judge) cmd.option("--judge <dir>", "a second converted CLIP model folder that scores every image too (gains under a judge)");
  return cmd
    .addOption(new Option("--device <device>", "auto, cpu, webgpu or cuda").argParser(parseDevice).default("auto"))
    .addOption(new Option("--batch-size <n>", "largest batch of images per model call").argParser(parsePositiveInt).default(8))
    .addOption(new Option("--bootstrap <B>", "bootstrap resamples of the intervals").argParser(parsePositiveInt).default(2000))
    .option("--json", "print the summary as JSON on stdout")
    .option("--quiet", "no progress on stderr");
}

const RUN_HELP = `
Configurations: --configs file.json (an array, or {"configs": [...]}, of
  {"name", "backend": "comfyui"|"a1111", "url": "…" or ["…", "…"], "workflow": "api.json", "checkpoint",
   "params": {"steps", "cfgScale", "width", "height", "sampler", "scheduler", "batchSize", "extra"},
   "negativePrompt", "authFile", "stallTimeout", "concurrency"})
and/or --config name=sd15,backend=comfyui,url=http://127.0.0.1:8188,checkpoint=sd15.safetensors,steps=20,cfg=7
  (keys: name backend url workflow checkpoint steps cfg width height sampler scheduler batch-size negative auth-file
   stall-timeout concurrency; url may repeat for a pool; values cannot hold commas: use --configs for those).
Seeds: prompt p gets seeds s0 … s0+N-1, s0 = (--seed + FNV-1a(prompt id)) mod 2^31, the same in every configuration.
Prompt sets: parti (PartiPrompts, --categories e.g. Animals,Vehicles), hpsv2 (--categories anime,photo …), or a
  .tsv (PartiPrompts columns), .json (HPSv2 format) or text file (one prompt a line).
Exit codes: 0 all scored; 3 partial (candidates failed; listed on stderr and in summary.json); 2 bad arguments;
  1 failure (nothing scored, a server down …); 130 interrupted (run it again with --resume).`;

/** Registers `pickrank eval` and its subcommands. */
export function registerEval(program: Command, ctx: CommandContext): void {
  const ev = program.command("eval").description("Measure selection gains, compare configurations, check agreement with human labels");
  const run = ev
    .command("run")
    .description("Render a prompt set × N seeds on named configurations, score every candidate, summarise and report")
    .requiredOption("--prompts <set|file>", "prompt set: parti, hpsv2, or a .tsv/.json/text file")
    .option("--limit <n>", "the first n prompts (after --categories)", parsePositiveInt)
    .option("--categories <list>", "only these categories (PartiPrompts) or styles (HPSv2), comma-separated", collectList, [])
    .addOption(new Option("-n, --n <count>", "seeds (candidates) per prompt and configuration").argParser(parsePositiveInt).default(4))
    .addOption(new Option("--seed <base>", "base of every prompt's seeds").argParser(parseSeed).default(0))
    .option("--config <spec>", "a configuration as key=value pairs (repeat for several)", collect, [])
    .option("--configs <file>", "configurations from a JSON file")
    .option(
      "--queue <redis-url>",
      "render on workers instead of the configurations' servers: configuration <name> on the workers started with " +
        "pickrank worker --queue-name <queue-name>-<name> (their url, workflow and credentials stay with them)",
    )
    .option("--queue-name <prefix>", "with --queue: the prefix of the configurations' queue names", "pickrank")
    .option("--queue-ca <file>", "with a rediss:// --queue: the PEM certificate authority to trust")
    .option("--shared-dir <dir>", "with --queue: the folder shared with the workers, for images passed by reference");
  addCommon(run, true, OUT_HELP.run)
    .addHelpText("after", RUN_HELP)
    .action(action(ctx, (opts) => runEvalRun(ctx, opts)));

  const images = ev
    .command("images")
    .description("Score images made elsewhere: HPSv2 benchmark folders (<folder>/<style>/<index>.jpg, one per configuration) or a manifest")
    .argument("[folders...]", "folders in the HPSv2 benchmark layout; each folder's name is its configuration")
    .option("--manifest <file>", "a .jsonl ({prompt, file, config} a line) or .csv (prompt,file,config) of images");
  addCommon(images, true, OUT_HELP.images).action(action(ctx, (folders: string[], opts) => runEvalImages(ctx, folders, opts)));

  const pairs = ev
    .command("pairs")
    .description("PickScore's agreement with Pick-a-Pic-format human labels: accuracy by the paper's tie protocol and with ties dropped")
    .argument("<files...>", "test pairs: Pick-a-Pic Parquet files, or JSONL ({caption, jpg_0, jpg_1, label_0, label_1} with image files)")
    .option("--validation <file>", "validation pairs that choose the tie threshold (repeat for several)", collect, [])
    .option("--tie-threshold <t>", "a fixed tie threshold on |p0 − p1| instead of choosing it on --validation", Number);
  addCommon(pairs, false, OUT_HELP.pairs).action(action(ctx, (files: string[], opts) => runEvalPairs(ctx, files, opts)));
}

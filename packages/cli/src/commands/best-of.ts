/**
 * `pickrank best-of`: render N candidates per prompt on ComfyUI or Automatic1111, score each with
 * PickScore as it arrives, print every candidate ranked, and (with --out) save the best as PNG with
 * their scores in the PNG text chunks. Progress goes to stderr, the table or --json to stdout.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { Backend, GenerationParams } from "@pickrank/adapters";
import type { Scorer } from "@pickrank/core";
import { invalidParameter, PickrankError, toPickrankError } from "@pickrank/contract";
import type { BestOfBatchResult, BestOfEvent, BestOfOptions, BestOfResult, formatProb, formatScore } from "@pickrank/selector";
import { InvalidArgumentError, Option, type Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { addNodeFlags, nodeOverridesFromFlags, type NodeFlagOptions } from "../node-flags.ts";
import { parseDevice, parsePositiveInt, type DeviceOption } from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine, formatBytes, renderTable, writeJson, type Io } from "../ui.ts";

export const DEFAULT_URLS: Record<string, string> = {
  comfyui: "http://127.0.0.1:8188",
  a1111: "http://127.0.0.1:7860",
};

interface BestOfCliOptions extends NodeFlagOptions {
  prompt?: string;
  prompts?: string;
  negative?: string;
  n: number;
  backend: string;
  url: string[];
  auth?: string;
  workflow?: string;
  checkpoint?: string;
  seed?: number;
  steps?: number;
  cfg?: number;
  width?: number;
  height?: number;
  sampler?: string;
  scheduler?: string;
  top: number;
  keep: "top" | "all";
  out?: string;
  model?: string;
  device: DeviceOption;
  batchSize: number;
  minSurvivors?: number;
  draftSteps?: number;
  draftSize?: { width: number; height: number };
  refine?: number;
  diverse?: number | true;
  json?: boolean;
  quiet?: boolean;
  // scoring prompt (selector/score-prompt.ts)
  scorePrompt?: string;
  scoreRawPrompt?: boolean;
}

function parseNonNegativeInt(v: string): number {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`Expected a non-negative integer but received ${JSON.stringify(v)}.`);
  return n;
}

function parsePositiveNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`Expected a positive number but received ${JSON.stringify(v)}.`);
  return n;
}

function parseSize(v: string): { width: number; height: number } {
  const m = /^\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*$/i.exec(v);
  const w = m ? Number(m[1]) : NaN;
  const h = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(w > 0) || !(h > 0)) throw new InvalidArgumentError(`Expected WIDTHxHEIGHT (like 512x512) or one number for a square but received ${JSON.stringify(v)}.`);
  return { width: w, height: h };
}

function parseThreshold(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= -1 || n > 1) throw new InvalidArgumentError(`Expected a cosine threshold in (-1, 1] but received ${JSON.stringify(v)}.`);
  return n;
}

/** One prompt per line; blank lines and lines starting with # are skipped. */
export async function readPromptsFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PickrankError("NOT_FOUND", `Expected a prompts file (one prompt per line) at ${file} but it could not be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  const prompts = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (prompts.length === 0) throw new PickrankError("BAD_INPUT", `Expected at least one prompt in ${file} (one per line, # for comments) but found none`);
  return prompts;
}

async function readWorkflow(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PickrankError("NOT_FOUND", `Expected a ComfyUI workflow in API format (JSON, "Save (API)" in ComfyUI) at ${file} but it could not be read (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      cause: e,
      details: { parameter: "workflow", file },
    });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new PickrankError("BAD_INPUT", `Expected JSON in the workflow file ${file} but it does not parse: ${(e as Error).message}`, { cause: e, details: { parameter: "workflow", file } });
  }
}

export function registerBestOf(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("best-of")
    .description("Generate N candidates per prompt on ComfyUI or Automatic1111, score them with PickScore as they arrive, keep the best")
    .option("--prompt <text>", "the prompt")
    .option("--prompts <file>", "many prompts, one per line (blank lines and # comments skipped); they share the model and the server")
    .option("--negative <text>", "negative prompt")
    .option("-n, --n <count>", "candidates per prompt", parsePositiveInt, 8)
    .option("--backend <kind>", "generation server: comfyui or a1111 (or a registered kind)", "comfyui")
    .option(
      "--url <url>",
      "server URL (default http://127.0.0.1:8188 for comfyui, http://127.0.0.1:7860 for a1111); http://user:pass@host works and is never echoed; repeat for several servers (candidates are spread over them)",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--auth <user:pass>", "HTTP Basic credentials (A1111 --api-auth, a proxy in front of ComfyUI); never echoed")
    .option("--workflow <file>", "ComfyUI workflow in API format (default: the shipped txt2img workflow)")
    .option("--checkpoint <name>", "checkpoint to load (default: the workflow's, else the first the server lists)")
    .option("--seed <n>", "first seed; candidate i gets seed + i (default: random)", parseNonNegativeInt)
    .option("--steps <n>", "sampling steps", parsePositiveInt)
    .option("--cfg <scale>", "CFG scale", parsePositiveNumber)
    .option("--width <px>", "image width", parsePositiveInt)
    .option("--height <px>", "image height", parsePositiveInt)
    .option("--sampler <name>", "sampler name as the server calls it")
    .option("--scheduler <name>", "scheduler name as the server calls it")
    .option("--top <k>", "how many best candidates to select (and save with --out)", parsePositiveInt, 1)
    .addOption(new Option("--keep <which>", "what --out saves: the selected top k, or all candidates").choices(["top", "all"]).default("top"))
    .option("--out <dir>", "save the kept images as PNG (scores in the PNG text chunks) and result.json; re-running the same command resumes")
    .option("--model <dir>", "converted PickScore model folder (default: the cached one, pulled on first use)")
    .option("--device <device>", "auto, cpu, webgpu or cuda; auto tries cuda, then webgpu, then cpu", parseDevice, "auto")
    .option("--batch-size <n>", "largest micro-batch of candidates scored at once", parsePositiveInt, 8)
    .option("--min-survivors <n>", "fail a prompt when fewer candidates than this render and score (default 1)", parsePositiveInt)
    .option("--draft-steps <n>", "draft-then-refine: render the N candidates with this many steps first", parsePositiveInt)
    .option("--draft-size <WxH>", "draft-then-refine: render the N drafts at this size (e.g. 512x512)", parseSize)
    .option("--refine <k>", "draft-then-refine: re-render the best k drafts at full settings, same seeds (default max(top, min(n, 4)))", parsePositiveInt)
    .option("--diverse [threshold]", "with --top > 1: skip near-duplicates (image-embedding cosine above threshold, default 0.9)", parseThreshold)
    // scoring prompt: what PickScore compares the images with (selector/score-prompt.ts)
    .option(
      "--score-prompt <text>",
      "score against this text instead of the prompt (default: the prompt without weights, <lora:…> tags, BREAK …)",
    )
    .option("--score-raw-prompt", "score against the prompt exactly as written, weights and tags included")
    .option("--json", "print the result object as JSON on stdout (what the bestOf API returns, without image bytes)")
    .option("--quiet", "no progress on stderr")
    .addHelpText(
      "after",
      `
Needs a running generation server: ComfyUI (default, ${DEFAULT_URLS["comfyui"]}) or Automatic1111 started with --api
(--backend a1111, ${DEFAULT_URLS["a1111"]}).

Draft-then-refine (--draft-steps and/or --draft-size): all N candidates are rendered cheaply, ranked, and only the
best k are rendered again at full settings with the same seeds. The output reports how well draft and final
scores agree (Spearman, Kendall, whether the draft's best stayed best), so you can see whether it pays.

--diverse trades score for variety: walking the candidates best first, one whose image embedding is closer than
the threshold (cosine) to an already selected image is passed over for the next different one, so the top k can
hold lower-scored images. Raise the threshold to keep more of the score, lower it for more variety. When too few
distinct images exist, the best skipped ones fill the k places.

Scores compare candidates of the same prompt only; prob is the softmax of the scores over that prompt's candidates.
Exit codes: 0 success, 1 failure (server, model, too few candidates), 2 bad arguments, 130 cancelled (Ctrl-C;
with --out, running the same command again resumes).`,
    )
    .action(
      action(ctx, async (opts: BestOfCliOptions) => {
        await runBestOf(ctx, opts);
      }),
    );
  addNodeFlags(cmd);
}

async function runBestOf(ctx: CommandContext, opts: BestOfCliOptions): Promise<void> {
  const io = ctx.io;
  // Arguments first: nothing starts (no server call, no model load) when the command line is wrong.
  if ((opts.prompt === undefined) === (opts.prompts === undefined)) {
    throw new PickrankError("BAD_INPUT", `Expected exactly one of --prompt <text> or --prompts <file> but received ${opts.prompt === undefined ? "neither" : "both"}`);
  }
  if (opts.prompt !== undefined && opts.prompt.trim() === "") throw invalidParameter("--prompt", "a non-empty prompt", opts.prompt);
  checkScorePromptFlags(opts);
  if (opts.top > opts.n) throw invalidParameter("--top", `integer between 1 and -n (${opts.n})`, opts.top);
  if (opts.minSurvivors !== undefined && opts.minSurvivors > opts.n) throw invalidParameter("--min-survivors", `integer between 1 and -n (${opts.n})`, opts.minSurvivors);
  const drafting = opts.draftSteps !== undefined || opts.draftSize !== undefined;
  if (opts.refine !== undefined && !drafting) {
    throw new PickrankError("BAD_INPUT", "Expected --draft-steps or --draft-size with --refine (it sets how many drafts are rendered again) but received neither");
  }
  if (opts.refine !== undefined && (opts.refine > opts.n || opts.refine < opts.top)) throw invalidParameter("--refine", `integer between --top (${opts.top}) and -n (${opts.n})`, opts.refine);
  if (opts.workflow !== undefined && opts.backend !== "comfyui") {
    throw new PickrankError("BAD_INPUT", `Expected --workflow only with --backend comfyui but the backend is ${opts.backend}`);
  }
  const defaultUrl = DEFAULT_URLS[opts.backend];
  const urls = opts.url.length > 0 ? opts.url : defaultUrl !== undefined ? [defaultUrl] : [];
  if (urls.length === 0) throw new PickrankError("BAD_INPUT", `Expected --url for --backend ${opts.backend} (no default URL for that kind)`);
  const prompts = opts.prompts !== undefined ? await readPromptsFile(opts.prompts) : undefined;
  const workflow = opts.workflow !== undefined ? await readWorkflow(opts.workflow) : undefined;
  const nodes = nodeOverridesFromFlags(opts, opts.backend);

  const params: GenerationParams = {};
  if (opts.steps !== undefined) params.steps = opts.steps;
  if (opts.cfg !== undefined) params.cfgScale = opts.cfg;
  if (opts.width !== undefined) params.width = opts.width;
  if (opts.height !== undefined) params.height = opts.height;
  if (opts.sampler !== undefined) params.sampler = opts.sampler;
  if (opts.scheduler !== undefined) params.scheduler = opts.scheduler;
  if (opts.checkpoint !== undefined) params.checkpoint = opts.checkpoint;

  // The packages behind the command load once the arguments are known to be good: startup stays fast.
  const [{ createBackend, redactUrl }, { Scorer }, { bestOf, formatProb, formatScore, serializeResult }] = await Promise.all([
    import("@pickrank/adapters"),
    import("@pickrank/core"),
    import("@pickrank/selector"),
  ]);
  const spec = (url: string) => ({
    kind: opts.backend,
    url,
    ...(opts.auth !== undefined ? { auth: opts.auth } : {}),
    ...(workflow !== undefined ? { workflow } : {}),
    ...(nodes !== undefined ? { options: { nodes } } : {}),
  });
  // Several --url: one pool that spreads the candidates and retries a failed one on another server.
  const backend: Backend = urls.length === 1 ? createBackend(spec(urls[0]!)) : createBackend({ kind: "pool", url: "", options: { backends: urls.map(spec) } });
  const where = urls.map(redactUrl).join(", ");
  const ctl = new AbortController();
  const onSigint = () => {
    if (!opts.quiet) io.stderr.write("\npickrank: cancelling (Ctrl-C again to quit at once)…\n");
    process.removeListener("SIGINT", onSigint);
    ctl.abort(new PickrankError("ABORTED", "best-of was cancelled by Ctrl-C"));
  };
  process.on("SIGINT", onSigint);
  let scorer: Scorer | undefined;
  try {
    // Reachability before the model loads, so a stopped server is a 1-second message, not a 10-second one.
    const health = await backend.check(ctl.signal);
    if (!health.ok) {
      const down = health.members ?? [health];
      const why = down.length > 1 ? `: ${down.map((x) => `${x.backend}: ${x.error?.message ?? "down"}`).join("; ")}` : health.error ? `: ${health.error.message}` : "";
      throw new PickrankError(
        "BACKEND_UNREACHABLE",
        `Could not reach the ${opts.backend} server${urls.length > 1 ? "s" : ""} at ${where}${why}; expected ${urls.length > 1 ? "at least one" : "it"} running (start it${opts.backend === "a1111" ? " with --api" : ""}, or pass --url)`,
        { details: { backend: opts.backend, urls: urls.map(redactUrl), health } },
      );
    }
    const model = await resolveModel(io, opts.model, Boolean(opts.quiet));
    scorer = await Scorer.create({ model, device: opts.device, batchSize: opts.batchSize });
    if (!opts.quiet) io.stderr.write(deviceLine(scorer));

    const progress = new BestOfProgress(io, prompts?.length ?? 1, Boolean(opts.quiet));
    const bo: BestOfOptions = {
      n: opts.n,
      backend,
      scorer,
      top: opts.top,
      params,
      batchSize: opts.batchSize,
      signal: ctl.signal,
      onEvent: (e) => progress.on(e),
    };
    if (prompts) bo.prompts = prompts;
    else bo.prompt = opts.prompt!;
    if (opts.negative !== undefined) bo.negativePrompt = opts.negative;
    if (opts.seed !== undefined) bo.seed = opts.seed;
    if (opts.minSurvivors !== undefined) bo.minSurvivors = opts.minSurvivors;
    if (drafting) {
      bo.refine = {
        draft: {
          ...(opts.draftSteps !== undefined ? { steps: opts.draftSteps } : {}),
          ...(opts.draftSize !== undefined ? { width: opts.draftSize.width, height: opts.draftSize.height } : {}),
        },
        ...(opts.refine !== undefined ? { k: opts.refine } : {}),
      };
    }
    if (opts.diverse !== undefined) bo.diverse = opts.diverse === true ? true : { threshold: opts.diverse };
    if (opts.scorePrompt !== undefined) bo.scorePrompt = opts.scorePrompt;
    if (opts.scoreRawPrompt) bo.scoreRawPrompt = true;
    if (opts.out !== undefined) {
      // The workflow shapes the pixels but lives in the backend: resuming must require the same one.
      const fingerprint = workflow !== undefined
        ? { workflow: createHash("sha256").update(JSON.stringify(workflow)).update(nodes !== undefined ? JSON.stringify(nodes) : "").digest("hex") }
        : undefined;
      bo.out = { dir: opts.out, keep: opts.keep, ...(fingerprint ? { fingerprint } : {}) };
    }

    let result: BestOfResult | BestOfBatchResult;
    try {
      result = await bestOf(bo);
    } catch (e) {
      progress.stop();
      const err = toPickrankError(e);
      if (err.code === "ABORTED" && opts.out !== undefined) {
        throw new PickrankError("ABORTED", `${err.message}; finished candidates are kept in ${opts.out}: run the same command again to resume`, { cause: err });
      }
      throw err;
    }
    progress.stop();
    if (opts.json) writeJson(io, serializeResult(result));
    else printResult(io, result, { formatProb, formatScore });
    for (const r of "runs" in result ? result.runs : [result]) {
      for (const w of r.warnings) io.stderr.write(`pickrank: warning: ${"runs" in result ? `prompt ${JSON.stringify(r.prompt)}: ` : ""}${w}\n`);
    }
    if ("runs" in result && result.errors.length > 0) {
      for (const pe of result.errors) io.stderr.write(`pickrank: prompt ${pe.promptIndex + 1} failed: ${pe.error.message} [${pe.error.code}]\n`);
      ctx.exitCode = 1;
    }
  } finally {
    process.removeListener("SIGINT", onSigint);
    await scorer?.dispose();
    await backend.close();
  }
}

/** Relative to the working folder when inside it, else absolute (no "../../" chains). */
function shortPath(file: string, cwd = process.cwd()): string {
  const rel = path.relative(cwd, file);
  return rel === "" || rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

/** --score-prompt and --score-raw-prompt exclude each other; --score-prompt names one prompt's scoring text. */
function checkScorePromptFlags(opts: BestOfCliOptions): void {
  if (opts.scorePrompt !== undefined && opts.scoreRawPrompt) {
    throw new PickrankError("BAD_INPUT", "Expected either --score-prompt <text> or --score-raw-prompt but received both");
  }
  if (opts.scorePrompt !== undefined && opts.prompts !== undefined) {
    throw new PickrankError(
      "BAD_INPUT",
      "Expected --score-prompt only with --prompt (one scoring text for one prompt) but received --prompts",
    );
  }
  if (opts.scorePrompt !== undefined && opts.scorePrompt.trim() === "") {
    throw invalidParameter("--score-prompt", "a non-empty text", opts.scorePrompt);
  }
}

/** selector's score and probability formatters, handed down by runBestOf (selector loads with the action). */
interface Formatters {
  formatProb: typeof formatProb;
  formatScore: typeof formatScore;
}

function printRun(io: Io, r: BestOfResult, header: string | undefined, fmt: Formatters): void {
  const { formatScore: fmtScore, formatProb: fmtProb } = fmt;
  const out = io.stdout;
  if (header) out.write(`${header}\n`);
  if (r.scorePrompt !== r.prompt) out.write(`scored as: ${r.scorePrompt}\n`);
  const picked = new Set(r.top.map((c) => c.index));
  const cwd = process.cwd();
  const headers = ["rank", "seed", "score", "prob"];
  const align: ("left" | "right")[] = ["right", "right", "right", "right"];
  if (r.refine) {
    headers.push("draft rank", "draft score");
    align.push("right", "right");
  }
  headers.push("top", "saved");
  align.push("left", "left");
  const rows = r.ranked.map((c) => {
    const row = [String(c.rank), String(c.seed), fmtScore(c.score), fmtProb(c.prob)];
    if (r.refine) row.push(c.draft ? `${c.draft.rank}/${r.refine.drafts.length}` : "", c.draft ? fmtScore(c.draft.score) : "");
    row.push(picked.has(c.index) ? "*" : "", c.file ? shortPath(c.file, cwd) : "");
    return row;
  });
  out.write(renderTable(headers, rows, align));
  for (const f of r.failed) out.write(`failed: seed ${f.seed}${f.phase === "draft" && r.refine ? " (draft)" : ""}: ${f.error.message} [${f.error.code}]\n`);
  if (r.refine) {
    const rf = r.refine;
    const n2 = (x: number | null) => (x === null ? "n/a" : x.toFixed(2));
    out.write(
      `draft-then-refine: ${rf.drafts.length} drafts, best ${rf.k} re-rendered; agreement Spearman ${n2(rf.spearman)}, Kendall ${n2(rf.kendall)}; ` +
        `draft's best ${rf.bestStayedBest === null ? "failed to re-render" : rf.bestStayedBest ? "stayed best" : `ended at rank ${rf.draftBestFinalRank}`}\n`,
    );
  }
  if (r.diverse && r.diverse.skipped.length > 0) {
    const s = r.diverse.skipped.filter((x) => !x.filled);
    if (s.length > 0) out.write(`diverse: skipped ${s.map((x) => `seed ${x.seed} (cos ${x.cosine.toFixed(3)})`).join(", ")} as near-duplicates (threshold ${r.diverse.threshold})\n`);
  }
}

function printResult(io: Io, result: BestOfResult | BestOfBatchResult, fmt: Formatters): void {
  if ("runs" in result) {
    result.runs.forEach((r, i) => {
      if (i > 0) io.stdout.write("\n");
      printRun(io, r, `prompt: ${r.prompt}`, fmt);
    });
    if (result.out) io.stdout.write(`\nresult: ${shortPath(result.out.resultFile)}\n`);
  } else {
    printRun(io, result, undefined, fmt);
    if (result.out) io.stdout.write(`result: ${shortPath(result.out.resultFile)}\n`);
  }
  if (result.out?.work && result.out.work.files > 0) {
    const w = result.out.work;
    io.stdout.write(
      `work: ${w.files} rendered candidates (${formatBytes(w.bytes)}) kept in ${shortPath(w.dir)}, ` +
        "so the same command with another --top, --diverse or --keep re-selects without rendering; delete that folder to free the space\n",
    );
  }
}

/**
 * Progress on stderr: candidates rendered and scored per prompt and per server. On a terminal one
 * line is redrawn (≤10/s); in a log, a line per prompt phase and one when it finishes.
 */
class BestOfProgress {
  #rendered = 0;
  #scored = 0;
  #failed = 0;
  #total = 0;
  #phase = "";
  #drafted = false;
  #prompt = 0;
  #step = "";
  #last = 0;
  #perServer = new Map<string, number>();
  #active = false;
  #quarter = 0;

  constructor(
    private readonly io: Io,
    private readonly prompts: number,
    private readonly quiet: boolean,
  ) {}

  on(e: BestOfEvent): void {
    if (this.quiet) return;
    switch (e.type) {
      case "prompt-start":
        if (e.promptIndex !== this.#prompt) this.#drafted = false;
        this.#prompt = e.promptIndex;
        this.#phase = e.phase;
        if (e.phase === "draft") this.#drafted = true;
        this.#total = e.n;
        this.#rendered = this.#scored = this.#failed = 0;
        this.#step = "";
        this.#quarter = 0;
        if (!this.io.stderr.isTTY) this.io.stderr.write(`${this.#label()} rendering ${e.n}${e.reused > 0 ? ` (${e.reused} from the journal)` : ""}\n`);
        break;
      case "rendered":
        this.#rendered = e.rendered;
        if (!e.reused) this.#perServer.set(e.backend, (this.#perServer.get(e.backend) ?? 0) + 1);
        break;
      case "scored":
        this.#scored = e.scored;
        // In a log: a line at each quarter of the candidates scored, not one per event.
        if (!this.io.stderr.isTTY && e.total >= 4 && e.scored < e.total) {
          const q = Math.floor((4 * e.scored) / e.total);
          if (q > this.#quarter) {
            this.#quarter = q;
            this.io.stderr.write(`${this.#line()}\n`);
          }
        }
        break;
      case "failed":
        this.#failed++;
        break;
      case "backend":
        if (e.event.type === "progress") this.#step = ` step ${e.event.step}/${e.event.steps}`;
        break;
      case "prompt-done":
        this.#clear();
        if (e.error) this.io.stderr.write(`${this.#label(e.promptIndex)} failed: ${e.error.message}\n`);
        else if (e.best) this.io.stderr.write(`${this.#label(e.promptIndex)} done: best seed ${e.best.seed}, score ${e.best.score.toFixed(3)}\n`);
        return;
      case "written":
        return;
    }
    this.#draw();
  }

  #label(pi = this.#prompt): string {
    const phase = this.#phase === "draft" ? "draft" : this.#drafted ? "refine" : "best-of";
    return `${this.prompts > 1 ? `[${pi + 1}/${this.prompts}] ` : ""}${phase}`;
  }

  #line(): string {
    const servers = [...this.#perServer].map(([k, v]) => `${k} ${v}`).join(", ");
    return `${this.#label()}: rendered ${this.#rendered}/${this.#total}, scored ${this.#scored}/${this.#total}${this.#failed ? `, failed ${this.#failed}` : ""}${this.#step}${servers ? ` (${servers})` : ""}`;
  }

  #draw(): void {
    if (!this.io.stderr.isTTY) return;
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    this.#active = true;
    this.io.stderr.write(`\r${this.#line()}\x1b[K`);
  }

  #clear(): void {
    if (this.#active) this.io.stderr.write("\r\x1b[K");
    this.#active = false;
  }

  stop(): void {
    if (!this.quiet) this.#clear();
  }
}

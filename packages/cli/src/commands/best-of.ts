/**
 * `pickrank best-of`: render N candidates per prompt on ComfyUI or Automatic1111, score each with
 * PickScore as it arrives, print every candidate ranked, and (with --out) save the best as PNG with
 * their scores in the PNG text chunks. Progress goes to stderr, the table or --json to stdout.
 *
 * The flags are data (BEST_OF_FLAGS): each names the bestOf option it sets, so the selector's one
 * schema checks them and its messages name the flag (`minSurvivors` → `--min`).
 */
import { readFile } from "node:fs/promises";
import type { Backend } from "@pickrank/adapters";
import { fsError, PickrankError, toPickrankError, type GenerationParams } from "@pickrank/contract";
import type { Scorer } from "@pickrank/core";
import type { BestOfBatchResult, BestOfOptions, BestOfResult } from "@pickrank/selector";
import { InvalidArgumentError, Option, type Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { addNodeFlags, nodeOverridesFromFlags, type NodeFlagOptions } from "../node-flags.ts";
import {
  MAX_PIXELS_FLAGS,
  MAX_PIXELS_HELP,
  parseDevice,
  parseMaxPixels,
  parseNonNegativeInt,
  collect,
  parsePositiveInt,
  parsePositiveNumber,
  type DeviceOption,
} from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { interruptOnSignals } from "../interrupt.ts";
import { deviceLine, writeJson } from "../ui.ts";

export const DEFAULT_URLS: Record<string, string> = {
  comfyui: "http://127.0.0.1:8188",
  a1111: "http://127.0.0.1:7860",
};

/** The flags that say which generation servers render, shared by best-of and worker (backendFromFlags reads them). */
export interface ServerFlagOptions {
  backend: string;
  url: string[];
  auth?: string;
  authFile?: string;
  stallTimeout?: number;
  workflow?: string;
}

/** The parsed flags (commander's camelCase names); the node flags come from node-flags.ts. */
export interface BestOfCliOptions extends NodeFlagOptions, ServerFlagOptions {
  /** The hidden old spelling of --min. */
  minSurvivors?: number;
  prompt?: string;
  prompts?: string;
  negative?: string;
  n: number;
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
  min?: number;
  draftSteps?: number;
  draftSize?: { width: number; height: number };
  refine?: number;
  diverse?: number | true;
  json?: boolean;
  quiet?: boolean;
  scorePrompt?: string;
  scoreRawPrompt?: boolean;
  maxPixels?: number;
  /** --queue: render on the workers of a BullMQ queue in Redis instead of on --url. */
  queue?: string;
  queueCa?: string;
  queueName?: string;
  sharedDir?: string;
}

function parseNumber(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`Expected a number but received ${JSON.stringify(v)}.`);
  return n;
}

function parseSize(v: string): { width: number; height: number } {
  const m = /^\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*$/i.exec(v);
  const w = m ? Number(m[1]) : NaN;
  const h = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(w > 0) || !(h > 0))
    throw new InvalidArgumentError(`Expected WIDTHxHEIGHT (like 512x512) or one number for a square but received ${JSON.stringify(v)}.`);
  return { width: w, height: h };
}

/** One flag of best-of: commander's spelling, its parser and default, and the bestOf option(s) it sets. */
export interface FlagSpec {
  flags: string;
  description: string;
  parse?: (value: string, previous: never) => unknown;
  default?: unknown;
  choices?: readonly string[];
  /** bestOf option paths this flag sets; messages about them name the flag. */
  api?: readonly string[];
  /** How messages name the flag when not its long form ("-n"). */
  name?: string;
  hidden?: boolean;
}

/** Every flag of `pickrank best-of`, in --help order. */
export const BEST_OF_FLAGS: readonly FlagSpec[] = [
  { flags: "--prompt <text>", description: "the prompt", api: ["prompt"] },
  {
    flags: "--prompts <file>",
    description: "many prompts, one per line (blank lines and # comments skipped); they share the model and the server",
    api: ["prompts"],
  },
  { flags: "--negative <text>", description: "negative prompt", api: ["negativePrompt"] },
  { flags: "-n, --n <count>", description: "candidates per prompt", parse: parsePositiveInt, default: 8, api: ["n"], name: "-n" },
  { flags: "--backend <kind>", description: "generation server: comfyui or a1111 (or a registered kind)", default: "comfyui" },
  {
    flags: "--url <url>",
    description:
      "server URL (default http://127.0.0.1:8188 for comfyui, http://127.0.0.1:7860 for a1111); http://user:pass@host works " +
      "and is never echoed; repeat for several servers (candidates are spread over them)",
    parse: collect as FlagSpec["parse"],
    default: [] as string[],
  },
  {
    flags: "--auth <user:pass>",
    description:
      "HTTP Basic credentials (A1111 --api-auth, a proxy in front of ComfyUI); never echoed, but visible in ps: prefer --auth-file or PICKRANK_AUTH",
  },
  {
    flags: "--auth-file <file>",
    description: "read the credentials (user:password, or a full Authorization header value) from the first line of this file",
  },
  {
    flags: "--stall-timeout <seconds>",
    description:
      "ComfyUI: fail when the server answers nothing, or our running prompt shows no progress, for this long (default 300); " +
      "waiting behind other clients' work never counts",
    parse: parsePositiveNumber,
  },
  { flags: "--workflow <file>", description: "ComfyUI workflow in API format (default: the shipped txt2img workflow)" },
  {
    flags: "--checkpoint <name>",
    description: "checkpoint to load (default: the workflow's, else the first the server lists)",
    api: ["params.checkpoint"],
  },
  {
    flags: "--seed <n>",
    description: "first seed; candidate i gets seed + i (default: random, within the backend's seed range)",
    parse: parseNonNegativeInt,
    api: ["seed"],
  },
  { flags: "--steps <n>", description: "sampling steps", parse: parsePositiveInt, api: ["params.steps"] },
  { flags: "--cfg <scale>", description: "CFG scale", parse: parsePositiveNumber, api: ["params.cfgScale"] },
  { flags: "--width <px>", description: "image width", parse: parsePositiveInt, api: ["params.width"] },
  { flags: "--height <px>", description: "image height", parse: parsePositiveInt, api: ["params.height"] },
  { flags: "--sampler <name>", description: "sampler name as the server calls it", api: ["params.sampler"] },
  { flags: "--scheduler <name>", description: "scheduler name as the server calls it", api: ["params.scheduler"] },
  {
    flags: "--top <k>",
    description: "how many best candidates to select (and save with --out)",
    parse: parsePositiveInt,
    default: 1,
    api: ["top"],
  },
  {
    flags: "--keep <which>",
    description: "what --out saves: the selected top k, or all candidates",
    choices: ["top", "all"],
    default: "top",
    api: ["out.keep"],
  },
  {
    flags: "--out <dir>",
    description: "save the kept images as PNG (scores in the PNG text chunks) and result.json; re-running the same command resumes",
    api: ["out", "out.dir"],
  },
  { flags: "--model <dir>", description: "converted PickScore model folder (default: the cached one, pulled on first use)" },
  {
    flags: "--device <device>",
    description: "auto, cpu, webgpu or cuda; auto tries cuda, then webgpu, then cpu",
    parse: parseDevice,
    default: "auto",
  },
  {
    flags: "--batch-size <n>",
    description: "largest micro-batch of candidates scored at once",
    parse: parsePositiveInt,
    default: 8,
    api: ["batchSize"],
  },
  {
    flags: "--min <m>",
    description:
      "accept a partial run: with at least m candidates rendered and scored, exit 0 even when others failed; " +
      "fewer fail the prompt (TOO_FEW_CANDIDATES)",
    parse: parsePositiveInt,
    api: ["minSurvivors"],
  },
  { flags: "--min-survivors <m>", description: "old name of --min", parse: parsePositiveInt, hidden: true },
  {
    flags: "--draft-steps <n>",
    description: "draft-then-refine: render the N candidates with this many steps first",
    parse: parsePositiveInt,
    api: ["refine.draft.steps"],
  },
  {
    flags: "--draft-size <WxH>",
    description: "draft-then-refine: render the N drafts at this size (e.g. 512x512)",
    parse: parseSize,
    api: ["refine.draft.width", "refine.draft.height", "refine.draft.params"],
  },
  {
    flags: "--refine <k>",
    description: "draft-then-refine: re-render the best k drafts at full settings, same seeds (default max(top, min(n, 4)))",
    parse: parsePositiveInt,
    api: ["refine.k", "refine", "refine.draft"],
  },
  {
    flags: "--diverse [threshold]",
    description: "with --top > 1: skip near-duplicates (image-embedding cosine above threshold, default 0.9)",
    parse: parseNumber,
    api: ["diverse", "diverse.threshold"],
  },
  // The scoring prompt: what PickScore compares the images with (core/src/prompt/score-prompt.ts).
  {
    flags: "--score-prompt <text>",
    description: "score against this text instead of the prompt (default: the prompt without weights, <lora:…> tags, BREAK …)",
    api: ["scorePrompt"],
  },
  {
    flags: "--score-raw-prompt",
    description: "score against the prompt exactly as written, weights and tags included",
    api: ["scoreRawPrompt"],
  },
  { flags: MAX_PIXELS_FLAGS, description: MAX_PIXELS_HELP, parse: parseMaxPixels, api: ["maxPixels"] },
  {
    flags: "--queue <redis-url>",
    description:
      "render on the workers of a queue in Redis (redis://[:password@]host:6379, rediss:// for TLS) instead of on --url: " +
      "start them with pickrank worker; the servers, their credentials and --workflow belong to the workers",
  },
  { flags: "--queue-ca <file>", description: "with a rediss:// --queue: the PEM certificate authority to trust (default: the system's)" },
  { flags: "--queue-name <name>", description: "with --queue: the queue the workers were started with (default pickrank)" },
  {
    flags: "--shared-dir <dir>",
    description: "with --queue: the folder this machine shares with the workers (as mounted here), for images passed by reference",
  },
  { flags: "--json", description: "print the result object as JSON on stdout (what the bestOf API returns, without image bytes)" },
  { flags: "--quiet", description: "no progress on stderr (warnings and errors still print)" },
];

/** How messages name API options for a CLI user: bestOf paths from BEST_OF_FLAGS, plus those of the scorer and backends. */
export const CLI_OPTION_NAMES: Readonly<Record<string, string>> = Object.fromEntries(
  BEST_OF_FLAGS.flatMap((f) => (f.api ?? []).map((a) => [a, f.name ?? /--[\w-]+/.exec(f.flags)![0]])),
);

function toOption(f: FlagSpec): Option {
  const o = new Option(f.flags, f.description);
  if (f.choices) o.choices(f.choices);
  if (f.parse) o.argParser(f.parse as (value: string, previous: unknown) => unknown);
  if (f.default !== undefined) o.default(f.default);
  if (f.hidden) o.hideHelp();
  return o;
}

const HELP_AFTER = `
Needs a running generation server: ComfyUI (default, ${DEFAULT_URLS["comfyui"]}) or Automatic1111 started with --api
(--backend a1111, ${DEFAULT_URLS["a1111"]}).

Draft-then-refine (--draft-steps and/or --draft-size): all N candidates are rendered cheaply, ranked, and only the
best k are rendered again at full settings with the same seeds. The output reports how well draft and final
scores agree (Spearman, Kendall, whether the draft's best stayed best), so you can see whether it pays.

--diverse trades score for variety: walking the candidates best first, one whose image embedding is closer than
the threshold (cosine) to an already selected image is passed over for the next different one, so the top k can
hold lower-scored images. Raise the threshold to keep more of the score, lower it for more variety. When too few
distinct images exist, the best skipped ones fill the k places. With --top 1 it changes nothing (a warning says so).

Scores compare candidates of the same prompt only; prob is the softmax of the scores over that prompt's candidates.
Exit codes: 0 success; 3 partial: some candidates (or, with --prompts, some prompts) failed and the rest is
reported (--min m accepts m survivors as success); 1 failure (server, model, too few candidates); 2 bad arguments;
130 cancelled (Ctrl-C, SIGTERM, SIGHUP; with --out, running the same command again resumes).`;

export function registerBestOf(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("best-of")
    .description("Generate N candidates per prompt on ComfyUI or Automatic1111, score them with PickScore as they arrive, keep the best");
  for (const f of BEST_OF_FLAGS) cmd.addOption(toOption(f));
  addNodeFlags(cmd);
  cmd.addHelpText("after", HELP_AFTER).action(
    action(ctx, async (opts: BestOfCliOptions) => {
      await runBestOf(ctx, opts);
    }),
  );
}

/** One prompt per line; blank lines and lines starting with # are skipped. */
export async function readPromptsFile(file: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PickrankError(
      "NOT_FOUND",
      `Expected a prompts file (one prompt per line) at ${file} but it could not be read ` +
        `(${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      {
        cause: e,
        details: { path: file, option: "--prompts" },
      },
    );
  }
  const prompts = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  if (prompts.length === 0)
    throw new PickrankError("BAD_INPUT", `Expected at least one prompt in ${file} (one per line, # for comments) but found none`, {
      details: { parameter: "--prompts" },
    });
  return prompts;
}

/** Reads a ComfyUI workflow (API format JSON) named by --workflow; NOT_FOUND / BAD_INPUT name the flag. */
export async function readWorkflow(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new PickrankError(
      "NOT_FOUND",
      `Expected a ComfyUI workflow in API format (JSON, "Save (API)" in ComfyUI) at ${file} but it could not be read ` +
        `(${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      {
        cause: e,
        details: { parameter: "--workflow", path: file },
      },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new PickrankError("BAD_INPUT", `Expected JSON in the workflow file ${file} but it does not parse: ${(e as Error).message}`, {
      cause: e,
      details: { parameter: "--workflow", file },
    });
  }
}

/** The data part of bestOf's options, from the flags (checked by the selector's schema, not here). */
export function settingsFromFlags(opts: BestOfCliOptions, prompts: string[] | undefined): Omit<BestOfOptions, "backend" | "scorer"> {
  const params: GenerationParams = {};
  const p: [keyof GenerationParams, unknown][] = [
    ["steps", opts.steps],
    ["cfgScale", opts.cfg],
    ["width", opts.width],
    ["height", opts.height],
    ["sampler", opts.sampler],
    ["scheduler", opts.scheduler],
    ["checkpoint", opts.checkpoint],
  ];
  for (const [k, v] of p) if (v !== undefined) (params as Record<string, unknown>)[k] = v;
  const s: Omit<BestOfOptions, "backend" | "scorer"> = {
    n: opts.n,
    top: opts.top,
    params,
    batchSize: opts.batchSize,
    optionNames: CLI_OPTION_NAMES,
  };
  if (prompts) s.prompts = prompts;
  if (opts.prompt !== undefined) s.prompt = opts.prompt;
  if (opts.negative !== undefined) s.negativePrompt = opts.negative;
  if (opts.seed !== undefined) s.seed = opts.seed;
  const min = opts.min ?? opts.minSurvivors;
  if (min !== undefined) s.minSurvivors = min;
  if (opts.draftSteps !== undefined || opts.draftSize !== undefined || opts.refine !== undefined) {
    s.refine = {
      draft: {
        ...(opts.draftSteps !== undefined ? { steps: opts.draftSteps } : {}),
        ...(opts.draftSize !== undefined ? { width: opts.draftSize.width, height: opts.draftSize.height } : {}),
      },
      ...(opts.refine !== undefined ? { k: opts.refine } : {}),
    };
  }
  if (opts.diverse !== undefined) s.diverse = opts.diverse === true ? true : { threshold: opts.diverse };
  if (opts.scorePrompt !== undefined) s.scorePrompt = opts.scorePrompt;
  if (opts.scoreRawPrompt) s.scoreRawPrompt = true;
  if (opts.out !== undefined) {
    // The backend's fingerprint() covers the workflow; node overrides are added until it covers them too.
    const nodes = nodeOverridesFromFlags(opts, opts.backend);
    s.out = { dir: opts.out, keep: opts.keep, ...(nodes !== undefined ? { fingerprint: { nodes } } : {}) };
  }
  return s;
}

/**
 * The packages behind best-of (and its printing, which uses the selector's formatters), imported when
 * the command runs rather than when the CLI starts: `pickrank --help` and usage errors load none of them.
 */
async function loadPackages() {
  const [adapters, core, selector, ui] = await Promise.all([
    import("@pickrank/adapters"),
    import("@pickrank/core"),
    import("@pickrank/selector"),
    import("../best-of-ui.ts"),
  ]);
  return { adapters, core, selector, ui };
}
type Packages = Awaited<ReturnType<typeof loadPackages>>;

/**
 * The backend for the flags (best-of, and pickrank worker): one server, or a pool over every --url (it spreads the candidates and retries a failed one elsewhere). */
export async function backendFromFlags(
  opts: Pick<ServerFlagOptions, "backend" | "auth" | "authFile" | "stallTimeout"> & NodeFlagOptions,
  urls: string[],
  workflow: unknown,
  p: Pick<Packages, "adapters">,
): Promise<Backend> {
  const { createBackend, resolveAuth } = p.adapters;
  const nodes = nodeOverridesFromFlags(opts, opts.backend);
  // --auth, else --auth-file, else PICKRANK_AUTH: the last two stay out of ps and shell history.
  const auth = (await resolveAuth({ auth: opts.auth, authFile: opts.authFile }))?.auth;
  const options = {
    ...(opts.stallTimeout !== undefined ? { stallTimeoutMs: Math.round(opts.stallTimeout * 1000) } : {}),
    ...(nodes !== undefined ? { nodes } : {}),
  };
  const spec = (url: string) => ({
    kind: opts.backend,
    url,
    ...(auth !== undefined ? { auth } : {}),
    ...(workflow !== undefined ? { workflow } : {}),
    ...(Object.keys(options).length > 0 ? { options } : {}),
  });
  return urls.length === 1
    ? createBackend(spec(urls[0]!))
    : createBackend({ kind: "pool", url: "", options: { backends: urls.map(spec) } });
}

/** Arguments first: nothing starts (no server call, no model load) when the command line is wrong. */
async function prepare(
  opts: BestOfCliOptions,
  p: Packages,
): Promise<{ settings: Omit<BestOfOptions, "backend" | "scorer">; backend: Backend | undefined; urls: string[] }> {
  if (opts.queue !== undefined) return prepareQueued(opts, p);
  if (opts.workflow !== undefined && opts.backend !== "comfyui") {
    throw new PickrankError("BAD_INPUT", `Expected --workflow only with --backend comfyui but the backend is ${opts.backend}`, {
      details: { parameter: "--workflow" },
    });
  }
  const defaultUrl = DEFAULT_URLS[opts.backend];
  const urls = opts.url.length > 0 ? opts.url : defaultUrl !== undefined ? [defaultUrl] : [];
  if (urls.length === 0)
    throw new PickrankError("BAD_INPUT", `Expected --url for --backend ${opts.backend} (no default URL for that kind)`, {
      details: { parameter: "--url" },
    });
  // With --prompt too, the file is not read: the schema refuses the pair ("received both").
  const prompts = opts.prompts === undefined ? undefined : opts.prompt === undefined ? await readPromptsFile(opts.prompts) : [opts.prompts];
  const settings = settingsFromFlags(opts, prompts);
  const { checkSettings } = p.selector;
  checkSettings(settings, CLI_OPTION_NAMES);
  const workflow = opts.workflow !== undefined ? await readWorkflow(opts.workflow) : undefined;
  const backend = await backendFromFlags(opts, urls, workflow, p);
  try {
    checkSettings({ ...settings, backend }, CLI_OPTION_NAMES); // the seed range is the backend's
  } catch (e) {
    await backend.close();
    throw e;
  }
  return { settings, backend, urls };
}

/** The PEM text of --queue-ca (undefined without it); NOT_FOUND / FILESYSTEM name the flag. */
export async function readQueueCa(file: string | undefined): Promise<{ ca: string } | undefined> {
  if (file === undefined) return undefined;
  try {
    return { ca: await readFile(file, "utf8") };
  } catch (e) {
    throw fsError(e, { path: file, option: "--queue-ca", action: "read the certificate authority" });
  }
}

/** Flags that configure generation servers: with --queue they belong on the workers (pickrank worker). */
const WORKER_SIDE_FLAGS: [keyof BestOfCliOptions, string][] = [
  ["auth", "--auth"],
  ["authFile", "--auth-file"],
  ["stallTimeout", "--stall-timeout"],
  ["workflow", "--workflow"],
  ["promptNode", "--prompt-node"],
  ["negativeNode", "--negative-node"],
  ["seedNode", "--seed-node"],
  ["batchNode", "--batch-node"],
  ["outputNode", "--output-node"],
  ["samplerNode", "--sampler-node"],
];

/** --queue: the settings only; the queue backend is made once the model is loaded (its jobs name the model). */
async function prepareQueued(
  opts: BestOfCliOptions,
  p: Packages,
): Promise<{ settings: Omit<BestOfOptions, "backend" | "scorer">; backend: undefined; urls: string[] }> {
  const { redisConnection } = await import("@pickrank/queue");
  redisConnection(opts.queue!, "--queue", await readQueueCa(opts.queueCa));
  const workerSide = [
    ...(opts.url.length > 0 ? ["--url"] : []),
    ...WORKER_SIDE_FLAGS.filter(([k]) => opts[k] !== undefined).map(([, f]) => f),
  ];
  if (workerSide.length > 0)
    throw new PickrankError(
      "BAD_INPUT",
      `Expected ${workerSide.join(", ")} on the workers (pickrank worker) with --queue: they configure the generation servers, ` +
        "which the workers own; the coordinator only enqueues",
      { details: { parameter: workerSide[0] } },
    );
  const prompts = opts.prompts === undefined ? undefined : opts.prompt === undefined ? await readPromptsFile(opts.prompts) : [opts.prompts];
  const settings = settingsFromFlags(opts, prompts);
  p.selector.checkSettings(settings, CLI_OPTION_NAMES);
  p.selector.checkSettings({ ...settings, backend: { maxSeed: 2 ** 32 - 1 } as Backend }, CLI_OPTION_NAMES);
  return { settings, backend: undefined, urls: [] };
}

/** The queue backend of --queue, for the loaded model: its jobs name the model, its plan is the run's prompts. */
async function queueBackend(opts: BestOfCliOptions, scorer: Scorer, settings: Omit<BestOfOptions, "backend" | "scorer">) {
  const { QueueBackend, modelKey, redisConnection } = await import("@pickrank/queue");
  return new QueueBackend({
    connection: redisConnection(opts.queue!, "--queue", await readQueueCa(opts.queueCa)),
    ...(opts.queueName !== undefined ? { queueName: opts.queueName } : {}),
    ...(opts.sharedDir !== undefined ? { sharedDir: opts.sharedDir } : {}),
    model: modelKey(scorer.manifest),
    dims: scorer.manifest.dims.projection,
    plan: { prompts: settings.prompts ?? [settings.prompt!], n: settings.n, params: firstPassParams(settings) },
  });
}

/** The settings of a run's first pass: the drafts' with draft-then-refine (as the selector derives them), else the run's. */
function firstPassParams(settings: Omit<BestOfOptions, "backend" | "scorer">): GenerationParams {
  const params: GenerationParams = { ...(settings.params ?? {}) };
  const d = settings.refine?.draft;
  if (!d) return params;
  const draft: GenerationParams = { ...params, ...(d.params ?? {}) };
  if (d.steps !== undefined) draft.steps = d.steps;
  if (d.width !== undefined) draft.width = d.width;
  if (d.height !== undefined) draft.height = d.height;
  return draft;
}

/** Reachability before the model loads, so a stopped server is a 1-second message, not a 10-second one. */
async function checkServer(backend: Backend, opts: BestOfCliOptions, urls: string[], signal: AbortSignal, p: Packages): Promise<void> {
  const health = await backend.check(signal);
  if (health.ok) return;
  const { redactUrl } = p.adapters;
  const where = urls.map(redactUrl).join(", ");
  const down = health.members ?? [health];
  // Refused credentials, or a workflow the server's node types cannot read, are not a stopped server: their own codes.
  const refused = down.find((x) => x.error?.code === "BACKEND_AUTH" || x.error?.code === "BAD_INPUT");
  if (refused?.error)
    throw new PickrankError(refused.error.code, refused.error.message, { details: { ...refused.error.details, backend: refused.backend } });
  const why =
    down.length > 1
      ? `: ${down.map((x) => `${x.backend}: ${x.error?.message ?? "down"}`).join("; ")}`
      : health.error
        ? `: ${health.error.message}`
        : "";
  throw new PickrankError(
    "BACKEND_UNREACHABLE",
    `Could not reach the ${opts.backend} server${urls.length > 1 ? "s" : ""} at ${where}${why}; ` +
      `expected ${urls.length > 1 ? "at least one" : "it"} running ` +
      `(start it${opts.backend === "a1111" ? " with --api" : ""}, or pass --url)`,
    { details: { backend: opts.backend, urls: urls.map(redactUrl), health } },
  );
}

/** API option names in a message replaced by the flags a CLI user types ("raise maxPixels" → "raise --max-pixels"). */
export function withFlagNames(text: string): string {
  let out = text;
  for (const [api, flag] of Object.entries(CLI_OPTION_NAMES)) {
    if (!/[A-Z.]/.test(api)) continue; // plain words ("prompt", "top", "n") are too common to rewrite in prose
    out = out.replace(new RegExp(`(?<![\\w.-])(?:options\\.)?${api.replace(/\./g, "\\.")}(?![\\w])`, "g"), flag);
  }
  return out;
}

function cliError(e: unknown, opts: BestOfCliOptions): PickrankError {
  const err = toPickrankError(e);
  const message = withFlagNames(err.message);
  const resume =
    err.code === "ABORTED" && opts.out !== undefined
      ? `; finished candidates are kept in ${opts.out}: run the same command again to resume`
      : "";
  if (message === err.message && resume === "") return err;
  return new PickrankError(err.code, message + resume, { cause: err, ...(err.details ? { details: err.details } : {}) });
}

async function runBestOf(ctx: CommandContext, opts: BestOfCliOptions): Promise<void> {
  const io = ctx.io;
  const p = await loadPackages();
  const { Scorer } = p.core;
  const { bestOf, serializeResult } = p.selector;
  const { BestOfProgress, printBestOfResult, reportOutcome } = p.ui;
  const prepared = await prepare(opts, p).catch((e: unknown) => {
    throw cliError(e, opts);
  });
  const { settings, urls } = prepared;
  let backend = prepared.backend;
  const interrupt = interruptOnSignals(io, { quiet: Boolean(opts.quiet), what: "best-of" });
  let scorer: Scorer | undefined;
  try {
    if (backend) await checkServer(backend, opts, urls, interrupt.signal, p);
    const model = await resolveModel(io, opts.model, Boolean(opts.quiet));
    scorer = await Scorer.create({
      model,
      device: opts.device,
      batchSize: opts.batchSize,
      ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
    });
    if (!opts.quiet) io.stderr.write(deviceLine(scorer));
    let selectorScorer: Scorer = scorer;
    if (!backend) {
      const q = await queueBackend(opts, scorer, settings);
      backend = q;
      await checkQueue(q, io, Boolean(opts.quiet), interrupt.signal);
      selectorScorer = (await import("@pickrank/queue")).withWorkerEmbeddings(scorer, q.embeddings);
    }
    const progress = new BestOfProgress(io, settings.prompts?.length ?? 1, Boolean(opts.quiet), withFlagNames);
    let result: BestOfResult | BestOfBatchResult;
    try {
      result = await bestOf({ ...settings, backend, scorer: selectorScorer, signal: interrupt.signal, onEvent: (e) => progress.on(e) });
    } finally {
      progress.stop();
    }
    if (opts.json) writeJson(io, serializeResult(result));
    else printBestOfResult(io, result);
    ctx.exitCode = reportOutcome(io, result, {
      text: withFlagNames,
      minFlag: CLI_OPTION_NAMES["minSurvivors"]!,
    });
  } catch (e) {
    throw cliError(e, opts);
  } finally {
    await scorer?.dispose();
    await backend?.close();
    interrupt.dispose();
  }
}

/** Redis must answer; the line on stderr names the queue (the URL without its password) and its jobs. */
async function checkQueue(q: Backend, io: CommandContext["io"], quiet: boolean, signal: AbortSignal): Promise<void> {
  const h = await q.check(signal);
  if (!h.ok)
    throw new PickrankError(
      "BACKEND_UNREACHABLE",
      `Could not reach the queue ${q.id}: ${h.error?.message ?? "no answer"}; expected Redis running`,
      {
        details: { backend: q.id },
      },
    );
  if (!quiet) io.stderr.write(`pickrank: queue ${q.id} (${h.queue?.running ?? 0} running, ${h.queue?.pending ?? 0} waiting)\n`);
}

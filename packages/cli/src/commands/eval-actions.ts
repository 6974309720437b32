/**
 * The actions of `pickrank eval run|images|pairs` (flags in eval.ts). Each one: arguments first
 * (nothing starts when the command line is wrong), then the folder and its store, the servers, the
 * models; the work, written to the store as it arrives; then summary.json, candidates.csv and
 * report.html, written atomically; the exit code from the contract's EXIT table.
 */
import path from "node:path";
import { PickrankError, toPickrankError, type Backend } from "@pickrank/contract";
import type { Scorer } from "@pickrank/core";
import type { EvalConfig, EvalStore, PairsSource } from "@pickrank/eval";
import type { CommandContext } from "../main.ts";
import type { DeviceOption } from "../options.ts";
import { describeConfig, loadConfigs, type EvalConfigSpec } from "../eval-config.ts";
import { loadModels, openEvalDir, outcomeExit } from "../eval-common.ts";
import { writePairsOutputs, writeRunOutputs } from "../eval-outputs.ts";
import { EvalProgress } from "../eval-progress.ts";
import { interruptOnSignals } from "../interrupt.ts";
import { ProgressBar } from "../ui.ts";
import { readQueueCa } from "./best-of.ts";

interface CommonOpts {
  out: string;
  resume?: boolean;
  model?: string;
  judge?: string;
  device: DeviceOption;
  batchSize: number;
  bootstrap: number;
  json?: boolean;
  quiet?: boolean;
}

/** `eval run`'s flags. */
export interface EvalRunFlags extends CommonOpts {
  prompts: string;
  limit?: number;
  categories: string[];
  n: number;
  seed: number;
  config: string[];
  configs?: string;
  queue?: string;
  queueName: string;
  queueCa?: string;
  sharedDir?: string;
}

/**
 * --queue: every configuration renders on the workers of queue `<queue-name>-<name>`; the selector's
 * scorer takes the image embeddings the workers computed (one map for all configurations).
 * @throws BAD_INPUT for a configuration with a workflow or credentials (they belong on its workers).
 */
async function queueBackends(opts: EvalRunFlags, specs: EvalConfigSpec[], scorer: Scorer) {
  const q = await import("@pickrank/queue");
  for (const s of specs)
    if (s.workflow !== undefined || s.authFile !== undefined)
      throw new PickrankError(
        "BAD_INPUT",
        `Expected configuration ${s.name} without workflow and authFile with --queue: they belong on its workers ` +
          `(pickrank worker --queue-name ${opts.queueName}-${s.name} --workflow … --auth-file …)`,
        { details: { parameter: "--queue" } },
      );
  const connection = q.redisConnection(opts.queue!, "--queue", await readQueueCa(opts.queueCa));
  const embeddings = new WeakMap<Buffer, Float32Array>();
  const backends = specs.map(
    (s) =>
      new q.QueueBackend({
        connection,
        queueName: `${opts.queueName}-${s.name}`,
        model: q.modelKey(scorer.manifest),
        dims: scorer.manifest.dims.projection,
        embeddings,
        ...(opts.sharedDir !== undefined ? { sharedDir: opts.sharedDir } : {}),
      }),
  );
  return { backends, scorer: q.withWorkerEmbeddings(scorer, embeddings) };
}

/** Builds one configuration's backend: one server, or a pool over its URLs. */
async function buildBackend(c: EvalConfigSpec): Promise<Backend> {
  const { createBackend, resolveAuth } = await import("@pickrank/adapters");
  const { readFile } = await import("node:fs/promises");
  const auth = (await resolveAuth({ authFile: c.authFile }))?.auth;
  let workflow: unknown;
  if (c.workflow !== undefined) {
    const text = await readFile(c.workflow, "utf8").catch((e: unknown) => {
      throw toPickrankError(e, "NOT_FOUND", `Could not read the workflow of configuration ${c.name} (${c.workflow})`);
    });
    try {
      workflow = JSON.parse(text);
    } catch (e) {
      throw new PickrankError(
        "BAD_INPUT",
        `Expected JSON (ComfyUI API format) in ${c.workflow} for configuration ${c.name}: ${(e as Error).message}`,
      );
    }
  }
  const spec = (url: string) => ({
    kind: c.backend,
    url,
    ...(auth !== undefined ? { auth } : {}),
    ...(workflow !== undefined ? { workflow } : {}),
    ...(c.stallTimeout !== undefined ? { options: { stallTimeoutMs: Math.round(c.stallTimeout * 1000) } } : {}),
  });
  return c.urls.length === 1
    ? createBackend(spec(c.urls[0]!))
    : createBackend({ kind: "pool", url: "", options: { backends: c.urls.map(spec) } });
}

/** Every configuration's server answers, or BACKEND_UNREACHABLE (its own code for refused credentials) naming the configuration. */
async function checkServers(configs: readonly EvalConfig[], signal: AbortSignal): Promise<void> {
  const reports = await Promise.all(configs.map((c) => c.backend.check(signal)));
  reports.forEach((h, i) => {
    if (h.ok) return;
    const name = configs[i]!.name;
    const e = h.error ?? (h.members ?? []).find((m) => m.error)?.error;
    const code = e?.code === "BACKEND_AUTH" || e?.code === "BAD_INPUT" ? e.code : "BACKEND_UNREACHABLE";
    throw new PickrankError(
      code,
      `Configuration ${name}: could not use ${h.backend}${e ? `: ${e.message}` : ""}; expected its server running`,
      {
        details: { backend: h.backend, config: name },
      },
    );
  });
}

/** `pickrank eval run`. */
export async function runEvalRun(ctx: CommandContext, opts: EvalRunFlags): Promise<void> {
  const { loadPromptSet, evalRun } = await import("@pickrank/eval");
  const set = await loadPromptSet(opts.prompts, {
    categories: opts.categories,
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
  });
  const specs = await loadConfigs(opts.configs, opts.config);
  const configs: EvalConfig[] = [];
  const interrupt = interruptOnSignals(ctx.io, { quiet: Boolean(opts.quiet), what: "eval run" });
  let store: EvalStore | undefined;
  let models: { scorer: Scorer; judge?: Scorer; modelDir: string } | undefined;
  try {
    if (opts.queue !== undefined) (await import("@pickrank/queue")).redisConnection(opts.queue, "--queue");
    const config = (s: EvalConfigSpec, backend: Backend, concurrency: number): EvalConfig => ({
      name: s.name,
      backend,
      params: s.params,
      concurrency: s.concurrency ?? concurrency,
      ...(s.negativePrompt ? { negativePrompt: s.negativePrompt } : {}),
    });
    if (opts.queue === undefined) {
      for (const s of specs) configs.push(config(s, await buildBackend(s), 2 * s.urls.length));
      await checkServers(configs, interrupt.signal);
    }
    models = await loadModels(ctx.io, opts);
    let scorer: Scorer = models.scorer;
    if (opts.queue !== undefined) {
      // Prompts in flight per configuration: enough jobs in Redis to keep many workers busy.
      const q = await queueBackends(opts, specs, models.scorer);
      specs.forEach((s, i) => configs.push(config(s, q.backends[i]!, 16)));
      scorer = q.scorer;
      await checkServers(configs, interrupt.signal);
    }
    const settings = {
      command: "run",
      n: opts.n,
      seedBase: opts.seed,
      model: path.resolve(models.modelDir),
      judge: opts.judge !== undefined ? path.resolve(opts.judge) : null,
      configs: specs.map((s, i) => describeConfig(s, configs[i]!.backend.fingerprint())),
    };
    store = await openEvalDir(opts.out, settings, Boolean(opts.resume));
    await store.insertPrompts(set.prompts);
    const progress = new EvalProgress(ctx.io, Boolean(opts.quiet));
    const report = await evalRun({
      store,
      outDir: path.resolve(opts.out),
      prompts: set.prompts,
      n: opts.n,
      seedBase: opts.seed,
      configs,
      scorer,
      ...(models.judge ? { judge: models.judge } : {}),
      batchSize: opts.batchSize,
      signal: interrupt.signal,
      onEvent: (e) => progress.on(e),
    }).finally(() => progress.finish());
    const failures = report.failed.map((f) => ({ ...f, what: `${f.config} ${f.promptId} seed ${f.seed}` }));
    await writeRunOutputs(ctx.io, store, opts, {
      header: { ...settings, promptSet: set.name, categories: opts.categories, limit: opts.limit ?? null },
      prompts: set.prompts,
      configs: specs.map((s) => s.name),
      asked: report.asked,
      failures,
    });
    ctx.exitCode = outcomeExit(ctx.io, report.asked, report.scored, failures);
  } catch (e) {
    throw resumeHint(e, opts.out);
  } finally {
    await store?.close();
    await models?.scorer.dispose();
    await models?.judge?.dispose();
    await Promise.all(configs.map((c) => c.backend.close()));
    interrupt.dispose();
  }
}

/** An interrupted run's message says how to continue it. */
function resumeHint(e: unknown, out: string): PickrankError {
  const err = toPickrankError(e);
  if (err.code !== "ABORTED") return err;
  return new PickrankError(
    "ABORTED",
    `${err.message}; what was scored is stored in ${out}: run the same command with --resume to continue`,
    {
      cause: err,
    },
  );
}

/** `eval images`' flags. */
export interface EvalImagesFlags extends CommonOpts {
  manifest?: string;
}

/** `pickrank eval images`. */
export async function runEvalImages(ctx: CommandContext, folders: string[], opts: EvalImagesFlags): Promise<void> {
  const ev = await import("@pickrank/eval");
  if (folders.length > 0 === (opts.manifest !== undefined))
    throw new PickrankError(
      "BAD_INPUT",
      "Expected either folders (the HPSv2 benchmark layout) or --manifest <file> but received " + (folders.length > 0 ? "both" : "neither"),
      {
        details: { parameter: "--manifest" },
      },
    );
  const { items, prompts } =
    opts.manifest !== undefined ? await ev.readImageManifest(opts.manifest) : await ev.collectHpsv2Folders(folders);
  const configNames = [...new Set(items.map((i) => i.config))];
  const interrupt = interruptOnSignals(ctx.io, { quiet: Boolean(opts.quiet), what: "eval images" });
  let store: EvalStore | undefined;
  let models: { scorer: Scorer; judge?: Scorer; modelDir: string } | undefined;
  try {
    models = await loadModels(ctx.io, opts);
    const settings = {
      command: "images",
      model: path.resolve(models.modelDir),
      judge: opts.judge !== undefined ? path.resolve(opts.judge) : null,
    };
    store = await openEvalDir(opts.out, settings, Boolean(opts.resume));
    await store.insertPrompts(prompts);
    const bar = new ProgressBar(ctx.io, "scoring", "items", Boolean(opts.quiet));
    const report = await ev.scoreImages({
      store,
      items,
      scorer: models.scorer,
      ...(models.judge ? { judge: models.judge } : {}),
      batchSize: opts.batchSize,
      signal: interrupt.signal,
      onProgress: (d, t) => bar.update(d, t),
    });
    bar.finish();
    const failures = report.failed.map((f) => ({ error: f.error, what: f.item.file }));
    await writeRunOutputs(ctx.io, store, opts, {
      header: { ...settings, source: opts.manifest ?? folders },
      prompts,
      configs: configNames,
      asked: report.asked,
      failures,
    });
    ctx.exitCode = outcomeExit(ctx.io, report.asked, report.scored, failures);
  } catch (e) {
    throw resumeHint(e, opts.out);
  } finally {
    await store?.close();
    await models?.scorer.dispose();
    await models?.judge?.dispose();
    interrupt.dispose();
  }
}

/** `eval pairs`' flags. */
export interface EvalPairsFlags extends CommonOpts {
  validation: string[];
  tieThreshold?: number;
}

/** `pickrank eval pairs`. */
export async function runEvalPairs(ctx: CommandContext, files: string[], opts: EvalPairsFlags): Promise<void> {
  const { checkPairsSources, scorePairs } = await import("@pickrank/eval");
  if (opts.tieThreshold !== undefined && !(opts.tieThreshold >= 0 && opts.tieThreshold <= 1))
    throw new PickrankError("BAD_INPUT", `Expected a number from 0 to 1 for --tie-threshold but received ${String(opts.tieThreshold)}`, {
      details: { parameter: "--tie-threshold" },
    });
  const sources: PairsSource[] = [
    ...opts.validation.map((file) => ({ file, split: "validation" as const })),
    ...files.map((file) => ({ file, split: "test" as const })),
  ];
  const given = await checkPairsSources(sources);
  if (opts.tieThreshold === undefined && !given.validation)
    throw new PickrankError(
      "BAD_INPUT",
      "Expected --validation <file> (validation pairs that choose the tie threshold) or --tie-threshold <t> but received neither",
      { details: { parameter: "--validation" } },
    );
  const interrupt = interruptOnSignals(ctx.io, { quiet: Boolean(opts.quiet), what: "eval pairs" });
  let store: EvalStore | undefined;
  let models: { scorer: Scorer; modelDir: string } | undefined;
  try {
    models = await loadModels(ctx.io, { ...opts, judge: undefined } as CommonOpts);
    const settings = { command: "pairs", model: path.resolve(models.modelDir) };
    store = await openEvalDir(opts.out, settings, Boolean(opts.resume));
    const bar = new ProgressBar(ctx.io, "pairs", "items", Boolean(opts.quiet));
    const report = await scorePairs({
      store,
      sources,
      scorer: models.scorer,
      signal: interrupt.signal,
      onProgress: (d) => bar.update(d, d),
    });
    bar.finish();
    const failures = report.failed.map((f) => ({ error: f.error, what: `pair ${f.id}` }));
    await writePairsOutputs(ctx.io, store, opts, { header: { ...settings, sources }, failures });
    ctx.exitCode = outcomeExit(ctx.io, report.stored + failures.length, report.stored, failures);
  } catch (e) {
    throw resumeHint(e, opts.out);
  } finally {
    await store?.close();
    await models?.scorer.dispose();
    interrupt.dispose();
  }
}

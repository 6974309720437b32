/**
 * `pickrank worker --queue redis://…`: a long-running render-and-score worker for `best-of --queue`.
 * It is bound to this machine's generation servers (--url, --auth-file, --workflow: the credentials
 * stay here, never in Redis) and loads its own scorer (--device: the GPU where there is one). Each job
 * renders one candidate and embeds it; one line per job on stderr (JSON lines on stdout with --json).
 * SIGTERM, SIGINT or SIGHUP drain: no new job is taken, the running ones finish, then it exits 0; a
 * second signal quits at once (130) and the unfinished jobs go to other workers once their lock expires.
 */
import { PickrankError, toPickrankError } from "@pickrank/contract";
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { interruptOnSignals } from "../interrupt.ts";
import { addNodeFlags, type NodeFlagOptions } from "../node-flags.ts";
import { collect, parseDevice, parsePositiveInt, parsePositiveSeconds, type DeviceOption } from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine } from "../ui.ts";
import { backendFromFlags, DEFAULT_URLS, readQueueCa, readWorkflow, type ServerFlagOptions } from "./best-of.ts";

/** The parsed flags of `pickrank worker`. */
export interface WorkerCliOptions extends NodeFlagOptions, ServerFlagOptions {
  queue: string;
  queueCa?: string;
  queueName?: string;
  model?: string;
  device: DeviceOption;
  concurrency?: number;
  sharedDir?: string;
  name?: string;
  lockDuration?: number;
  stalledInterval?: number;
  json?: boolean;
  quiet?: boolean;
}

export function registerWorker(program: Command, ctx: CommandContext): void {
  const cmd = program
    .command("worker")
    .description("Render and score the jobs of best-of --queue on this machine's generation servers, until stopped")
    .requiredOption("--queue <redis-url>", "Redis to take jobs from: redis://[:password@]host:6379[/db], rediss:// for TLS")
    .option("--queue-ca <file>", "PEM certificate authority to trust for a rediss:// --queue (default: the system's)")
    .option("--queue-name <name>", "queue to serve; every worker of one name must render with the same servers' settings", "pickrank")
    .option("--backend <kind>", "generation server: comfyui or a1111", "comfyui")
    .option("--url <url>", "this machine's server URL (default by --backend); repeat for several (a pool)", collect, [] as string[])
    .option("--auth <user:pass>", "server credentials (prefer --auth-file or PICKRANK_AUTH: they stay out of ps)")
    .option("--auth-file <file>", "read the server credentials from the first line of this file")
    .option(
      "--stall-timeout <seconds>",
      "ComfyUI: fail a render whose server stops answering for this long (default 300)",
      parsePositiveSeconds,
    )
    .option("--workflow <file>", "ComfyUI workflow in API format (default: the shipped txt2img workflow)")
    .option("--model <dir>", "converted PickScore model folder; the same model as the coordinator's (default: the cached one)")
    .option("--device <device>", "auto, cpu, webgpu or cuda", parseDevice, "auto")
    .option("--concurrency <n>", "jobs at once (default: 2 per --url)", parsePositiveInt)
    .option("--shared-dir <dir>", "storage shared with the coordinator: images go there by reference instead of through Redis")
    .option("--name <name>", "how this worker names itself in results (default host:pid)")
    .option("--lock-duration <seconds>", "a job's lock; a dead worker's jobs are retaken after it (default 30)", parsePositiveSeconds)
    .option("--stalled-interval <seconds>", "how often dead workers' jobs are looked for (default 30)", parsePositiveSeconds)
    .option("--json", "one JSON line per event on stdout")
    .option("--quiet", "no line per job (start, drain, stop and errors still print)");
  addNodeFlags(cmd);
  cmd.action(action(ctx, (opts: WorkerCliOptions) => runWorker(ctx, opts)));
}

async function runWorker(ctx: CommandContext, opts: WorkerCliOptions): Promise<void> {
  const io = ctx.io;
  const [adapters, core, queue] = await Promise.all([import("@pickrank/adapters"), import("@pickrank/core"), import("@pickrank/queue")]);
  const connection = queue.redisConnection(opts.queue, "--queue", await readQueueCa(opts.queueCa));
  const where = queue.redactRedisUrl(opts.queue);
  const urls = opts.url.length > 0 ? opts.url : DEFAULT_URLS[opts.backend] !== undefined ? [DEFAULT_URLS[opts.backend]!] : [];
  if (urls.length === 0)
    throw new PickrankError("BAD_INPUT", `Expected --url for --backend ${opts.backend} (no default URL for that kind)`, {
      details: { parameter: "--url" },
    });
  if (opts.workflow !== undefined && opts.backend !== "comfyui")
    throw new PickrankError("BAD_INPUT", `Expected --workflow only with --backend comfyui but the backend is ${opts.backend}`, {
      details: { parameter: "--workflow" },
    });
  const workflow = opts.workflow !== undefined ? await readWorkflow(opts.workflow) : undefined;
  const backend = await backendFromFlags(opts, urls, workflow, { adapters });
  const interrupt = interruptOnSignals(io, { quiet: true, what: "the worker" });
  const model = await resolveModel(io, opts.model, Boolean(opts.quiet));
  const scorer = await core.Scorer.create({ model, device: opts.device });
  if (!opts.quiet) io.stderr.write(deviceLine(scorer));
  const log = (e: Record<string, unknown>, line: string): void => {
    if (opts.json) io.stdout.write(`${JSON.stringify(e)}\n`);
    else if (!opts.quiet || !String(e["type"]).startsWith("job-")) io.stderr.write(`pickrank worker: ${line}\n`);
  };
  const worker = queue.RenderWorker.start({
    connection,
    backend,
    scorer,
    ...(opts.queueName !== undefined ? { queueName: opts.queueName } : {}),
    concurrency: opts.concurrency ?? 2 * urls.length,
    ...(opts.sharedDir !== undefined ? { sharedDir: opts.sharedDir } : {}),
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.lockDuration !== undefined ? { lockDurationMs: Math.round(opts.lockDuration * 1000) } : {}),
    ...(opts.stalledInterval !== undefined ? { stalledIntervalMs: Math.round(opts.stalledInterval * 1000) } : {}),
    onEvent: (e) => {
      if (e.type === "job-done")
        log(
          e,
          `${e.jobId} seed ${e.seed} on ${e.backend}: rendered in ${Math.round(e.renderMs)} ms, scored in ${Math.round(e.scoreMs)} ms`,
        );
      else if (e.type === "job-failed")
        log(
          { ...e, error: e.error.toJSON() },
          `${e.jobId} seed ${e.seed} failed${e.retry ? " (will be retried)" : ""}: ${e.error.message} [${e.error.code}]`,
        );
      else log(e, `${e.message.replaceAll(opts.queue, where)}`);
    },
  });
  try {
    await worker.ready();
    log(
      { type: "ready", queue: where, queueName: worker.queueName, name: worker.name },
      `${worker.name} serving ${worker.queueName} at ${where}`,
    );
    await new Promise<void>((resolve) => interrupt.signal.addEventListener("abort", () => resolve(), { once: true }));
    log({ type: "draining" }, "draining: finishing the running jobs, taking no new one");
    await worker.close();
    log({ type: "stopped" }, "stopped");
  } catch (e) {
    await worker.close(true).catch(() => {});
    throw toPickrankError(e);
  } finally {
    await scorer.dispose();
    await backend.close();
    interrupt.dispose();
  }
}

/**
 * `pickrank serve`: one warm PickScore model behind HTTP for the ComfyUI and A1111 plugins and for
 * reward loops. The server lives in @pickrank/server, imported only when this command runs.
 */
import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { parseDevice, parseNonNegativeInt, parsePositiveInt, type DeviceOption } from "../options.ts";
import { resolveModel } from "../resolve-model.ts";
import { deviceLine, writeJson } from "../ui.ts";

interface ServeOptions {
  host: string;
  port: number;
  model?: string;
  device: DeviceOption;
  tokenFile?: string;
  maxBatch: number;
  maxWaitMs: number;
  maxQueue: number;
  maxBodyBytes: number;
  maxPixels: number;
  maxImages: number;
  requestTimeoutMs: number;
  textCache: number;
  cors?: string[];
  log?: boolean;
  json?: boolean;
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** Resolves on the first SIGTERM or SIGINT (then a second one exits at once with 130). */
function nextSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      process.once("SIGINT", () => process.exit(130));
      process.once("SIGTERM", () => process.exit(130));
      resolve(sig);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}

export function registerServe(program: Command, ctx: CommandContext): void {
  program
    .command("serve")
    .description("Serve PickScore over HTTP: one warm model, images of concurrent requests batched together")
    .option("--host <address>", "address to bind; anything but loopback needs a token", "127.0.0.1")
    .option("--port <n>", "TCP port (0: any free port)", parseNonNegativeInt, 7865)
    .option("--model <dir>", "converted model folder (default: the cached PickScore model, pulled on first use)")
    .option("--device <device>", "auto, cpu, webgpu or cuda", parseDevice, "auto")
    .option("--token-file <file>", "file whose first line is the bearer token clients must send (or env PICKRANK_TOKEN)")
    .option("--max-batch <n>", "images per vision run", parsePositiveInt, 16)
    .option("--max-wait-ms <n>", "how long an idle device waits for more images to batch", parseNonNegativeInt, 5)
    .option("--max-queue <n>", "requests in flight at once; more get 429 with Retry-After", parsePositiveInt, 64)
    .option("--max-body-bytes <n>", "largest request body", parsePositiveInt, 64 * 1024 * 1024)
    .option("--max-pixels <n>", "largest width × height of one image", parsePositiveInt, 4096 * 4096)
    .option("--max-images <n>", "images (or items) per request", parsePositiveInt, 256)
    .option("--request-timeout-ms <n>", "time to receive and answer a request", parsePositiveInt, 60_000)
    .option("--text-cache <n>", "prompt embeddings kept (LRU)", parsePositiveInt, 4096)
    .option("--cors <origin>", "allow this origin (repeatable; * for any); CORS is off without it", collect)
    .option("--log", "request logs (JSON lines) on stderr")
    .option("--json", 'print {"url","model","device"} on stdout once listening')
    .addHelpText(
      "after",
      "\nRoutes: POST /v1/rank, POST /v1/score, GET /v1/health, /v1/models, /metrics, /openapi.json." +
        "\nSIGTERM or Ctrl-C drains: requests in flight finish, new ones get 503. Scores compare images of the same prompt only.",
    )
    .action(
      action(ctx, async (opts: ServeOptions) => {
        const { checkListenAddress, readTokenFile, resolveOptions, startServer } = await import("@pickrank/server");
        const token = opts.tokenFile ? await readTokenFile(opts.tokenFile) : undefined;
        const serverOptions = {
          host: opts.host,
          port: opts.port,
          ...(token === undefined ? {} : { token }),
          maxBatch: opts.maxBatch,
          maxWaitMs: opts.maxWaitMs,
          maxQueue: opts.maxQueue,
          maxBodyBytes: opts.maxBodyBytes,
          maxPixels: opts.maxPixels,
          maxImages: opts.maxImages,
          requestTimeoutMs: opts.requestTimeoutMs,
          textCacheSize: opts.textCache,
          ...(opts.cors ? { cors: opts.cors } : {}),
          logger: Boolean(opts.log),
        };
        // Refuse a bad host/token combination, or an address in use, before loading a model.
        const resolved = resolveOptions(serverOptions);
        await checkListenAddress(resolved.host, resolved.port);
        const model = await resolveModel(ctx.io, opts.model, Boolean(opts.json));
        const server = await startServer({ ...serverOptions, model, device: opts.device });
        const signal = nextSignal();
        const scorer = server.engine.scorer;
        if (opts.json) writeJson(ctx.io, { url: server.url, model: scorer.modelDir, device: scorer.device });
        else ctx.io.stdout.write(`pickrank serve: listening on ${server.url} (model ${scorer.modelDir}, device ${scorer.device})\n`);
        ctx.io.stderr.write(deviceLine(scorer));
        const sig = await signal;
        ctx.io.stderr.write(`pickrank serve: ${sig}: finishing ${server.inFlight} request(s) in flight, refusing new ones\n`);
        await server.close();
        ctx.io.stderr.write("pickrank serve: stopped\n");
      }),
    );
}

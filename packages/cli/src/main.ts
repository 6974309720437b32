/**
 * The `pickrank` command, and the package's entry point (bin/pickrank.js calls `main`). Each command
 * lives in ./commands and registers itself on the program; `main` returns the exit code so tests can
 * run the CLI in-process. Registering a command loads no heavy module: @pickrank/core (and with it
 * onnxruntime-node and sharp), adapters and selector are imported inside the actions that use them,
 * so `--help` and bad arguments answer without loading them.
 */
import { Command, CommanderError } from "commander";
import { registerBestOf } from "./commands/best-of.ts";
import { registerEval } from "./commands/eval.ts";
import { registerModel } from "./commands/model.ts";
import { registerPreprocess } from "./commands/preprocess.ts";
import { registerRank } from "./commands/rank.ts";
import { registerServe } from "./commands/serve.ts";
import { registerTokenize } from "./commands/tokenize.ts";
import { registerWorker } from "./commands/worker.ts";
import { processIo, reportError, type Io } from "./ui.ts";

/** What a command's action needs from the program: where to print, and where to leave its exit code. */
export interface CommandContext {
  io: Io;
  /** Set by a command's action: the process exit code. */
  exitCode: number;
}

/** The commander program with every command registered; it throws CommanderError instead of exiting. */
export function buildProgram(ctx: CommandContext): Command {
  const program = new Command("pickrank")
    .description("Best-of-N for diffusion pipelines: generate N candidates, score them with PickScore, keep the best.")
    .version("0.1.0")
    .showHelpAfterError("(run with --help for usage)")
    .configureOutput({
      writeOut: (s) => ctx.io.stdout.write(s),
      writeErr: (s) => ctx.io.stderr.write(s),
    })
    .exitOverride();
  registerTokenize(program, ctx);
  registerPreprocess(program, ctx);
  registerModel(program, ctx);
  registerRank(program, ctx);
  registerBestOf(program, ctx);
  registerServe(program, ctx);
  registerEval(program, ctx);
  registerWorker(program, ctx);
  return program;
}

/** Wraps a command action: errors become a readable message and an exit code, never a stack trace. */
export function action<A extends unknown[]>(ctx: CommandContext, fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      const cmd = args[args.length - 1] as Command | undefined;
      const json = Boolean(cmd && typeof cmd.opts === "function" && (cmd.opts() as { json?: boolean }).json);
      ctx.exitCode = reportError(ctx.io, e, json);
    }
  };
}

/**
 * `pickrank … | head`: the reader may close the pipe before the command is done. What it did not read is
 * dropped and the command runs to its end (its files, journal and exit code as without the pipe),
 * instead of dying on an unhandled EPIPE. Other stdout errors still throw.
 */
let pipeClosedTolerated = false;
function toleratePipeClosed(): void {
  if (pipeClosedTolerated) return;
  pipeClosedTolerated = true;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code !== "EPIPE") throw e;
  });
}

/**
 * Runs the command line `argv` (as process.argv: node, script, then the arguments) and returns the exit
 * code: 0 on success (and for --help, --version), 2 for bad arguments, 130 when interrupted, 1 for other
 * errors (see ui.ts exitCodeFor). Never throws; errors are printed to `io` (and as JSON with --json).
 */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  if (io === processIo) toleratePipeClosed();
  const ctx: CommandContext = { io, exitCode: 0 };
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end here with code 0; usage errors were already printed by commander.
      return e.exitCode === 0 ? 0 : 2;
    }
    return reportError(io, e, argv.includes("--json"));
  }
  return ctx.exitCode;
}

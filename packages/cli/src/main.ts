/**
 * The `pickrank` command. Each command lives in ./commands and registers itself on the program;
 * `main` returns the exit code so tests can run the CLI in-process.
 */
import { Command, CommanderError } from "commander";
import { registerBestOf } from "./commands/best-of.ts";
import { registerModel } from "./commands/model.ts";
import { registerPreprocess } from "./commands/preprocess.ts";
import { registerRank } from "./commands/rank.ts";
import { registerServe } from "./commands/serve.ts";
import { registerTokenize } from "./commands/tokenize.ts";
import { processIo, reportError, type Io } from "./ui.ts";

export interface CommandContext {
  io: Io;
  /** Set by a command's action: the process exit code. */
  exitCode: number;
}

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
  return program;
}

/** Wraps a command action: errors become a readable message and an exit code, never a stack trace. */
export function action<A extends unknown[]>(
  ctx: CommandContext,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
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

export async function main(argv: string[], io: Io = processIo): Promise<number> {
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

const entry = process.argv[1];
if (entry && import.meta.url === new URL(`file://${entry}`).href) {
  process.exitCode = await main(process.argv);
}

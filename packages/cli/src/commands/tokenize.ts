import type { Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { writeJson } from "../ui.ts";

export function registerTokenize(program: Command, ctx: CommandContext): void {
  program
    .command("tokenize")
    .description("CLIP-tokenize a prompt the way PickScore does (77 ids, padded with 49407)")
    .argument("<text>", "the prompt")
    .option("--tokenizer <dir>", "folder with tokenizer.json or vocab.json + merges.txt (default: the bundled CLIP tokenizer)")
    .option("--json", 'print {"ids": [...]} for programs')
    .action(
      action(ctx, async (text: string, opts: { tokenizer?: string; json?: boolean }) => {
        const { ClipTokenizer, defaultTokenizerDir } = await import("@pickrank/core");
        const tok = await ClipTokenizer.fromDir(opts.tokenizer ?? defaultTokenizerDir());
        const ids = tok.encode(text);
        if (opts.json) writeJson(ctx.io, { ids });
        else ctx.io.stdout.write(ids.join(" ") + "\n");
      }),
    );
}

/**
 * Artists: the command-line recipe of artist-cli-recipe.sh, runnable as TypeScript. It runs the
 * `pickrank` command exactly as you would type it, then shows what an image viewer's "PNG info"
 * panel (ComfyUI, Automatic1111) will show for the saved winner.
 *
 *   pnpm tsx --conditions=development examples/artist-cli-recipe.ts "a lighthouse at dusk, oil painting" out/lighthouse
 *
 * Needs ComfyUI running (default http://127.0.0.1:8188) or A1111 with --api (PICKRANK_ARGS="--backend a1111").
 * PICKRANK_ARGS is appended to every command (e.g. "--url http://host:8188 --model /path/to/model").
 */
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { readPngText } from "@pickrank/selector";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const bin = path.join(root, "packages/cli/bin/pickrank.js");
const prompt = process.argv[2] ?? "a lighthouse at dusk, oil painting";
const out = path.resolve(process.argv[3] ?? "out/lighthouse");
const extra = (process.env["PICKRANK_ARGS"] ?? "").split(/\s+/).filter(Boolean);

function pickrank(args: string[]): void {
  console.log(`$ pickrank ${args.map((a) => (/\s/.test(a) ? JSON.stringify(a) : a)).join(" ")}`);
  // The same Node flags as this program: from the sources (tsx, --conditions=development) or the build.
  const r = spawnSync(process.execPath, [...process.execArgv, bin, ...args, ...extra], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// 1. Eight candidates, keep the best three as PNG with their scores; Ctrl-C and re-run resumes.
pickrank(["best-of", "--prompt", prompt, "-n", "8", "--top", "3", "--out", out]);

// 2. Cheap drafts first: 8 drafts at 8 steps, the best 3 re-rendered at full settings.
pickrank(["best-of", "--prompt", prompt, "-n", "8", "--draft-steps", "8", "--refine", "3", "--top", "2", "--out", `${out}-drafted`]);

// 3. What "PNG info" shows for the winner of step 1.
const result = JSON.parse(await readFile(path.join(out, "result.json"), "utf8")) as { best: { file: string; seed: number } };
const info = readPngText(await readFile(result.best.file));
console.log(`\nPNG info of ${path.relative(process.cwd(), result.best.file)}:\n${info["parameters"]}`);

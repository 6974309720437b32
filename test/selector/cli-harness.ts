/**
 * Running `pickrank` in tests: in-process through main() (fast, output captured), or as a child
 * process through the package's bin (for kill -9 and Ctrl-C), plus readers for the fakes' records.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { runCli as runCliCaptured } from "../helpers/cli.ts";
import { repoRoot } from "../helpers/paths.ts";

export interface RunResult {
  code: number;
  out: string;
  err: string;
}

/** In-process run (see test/helpers/cli.ts), with the field names these tests use. */
export async function runCli(args: string[]): Promise<RunResult> {
  const r = await runCliCaptured(args);
  return { code: r.code, out: r.stdout, err: r.stderr };
}

export const pickrankBin = path.join(repoRoot, "packages/cli/bin/pickrank.js");

export interface Child {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function spawnCli(args: string[]): Child {
  const proc = spawn(process.execPath, [pickrankBin, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on("exit", (code, signal) => resolve({ code, signal })));
  return { proc, out: () => out, err: () => err, exited };
}

/** Finished candidates recorded in an output folder's progress journal. */
export async function journalCandidates(outDir: string): Promise<number> {
  try {
    const text = await readFile(path.join(outDir, ".pickrank", "journal.jsonl"), "utf8");
    // Only whole lines count: a kill can leave a torn last line, which the resume skips too.
    return text.split("\n").filter((l) => {
      try {
        return (JSON.parse(l) as { t?: string }).t === "cand";
      } catch {
        return false;
      }
    }).length;
  } catch {
    return 0;
  }
}

export async function waitFor(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** The KSampler seed / steps and the checkpoint a fake ComfyUI prompt was queued with. */
export function comfySettings(prompt: Workflow): { seed: number; steps: number; checkpoint: unknown; width: unknown } {
  const nodes = Object.values(prompt);
  const ks = nodes.find((n) => n.class_type === "KSampler")!;
  const ck = nodes.find((n) => n.class_type === "CheckpointLoaderSimple");
  const lat = nodes.find((n) => n.class_type === "EmptyLatentImage");
  return { seed: ks.inputs["seed"] as number, steps: ks.inputs["steps"] as number, checkpoint: ck?.inputs["ckpt_name"], width: lat?.inputs["width"] };
}

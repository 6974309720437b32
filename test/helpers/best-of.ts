/** Readers for what `best-of` leaves behind: its output folder's journal, and the prompts a fake ComfyUI received. */
import { readFile } from "node:fs/promises";
import path from "node:path";

/** Finished candidates recorded in an output folder's progress journal (0 when there is none yet). */
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

type Workflow = Record<string, { class_type: string; inputs: Record<string, unknown> }>;

/** The KSampler seed / steps and the checkpoint a fake ComfyUI prompt was queued with. */
export function comfySettings(prompt: Workflow): { seed: number; steps: number; checkpoint: unknown; width: unknown } {
  const nodes = Object.values(prompt);
  const ks = nodes.find((n) => n.class_type === "KSampler")!;
  const ck = nodes.find((n) => n.class_type === "CheckpointLoaderSimple");
  const lat = nodes.find((n) => n.class_type === "EmptyLatentImage");
  return {
    seed: ks.inputs["seed"] as number,
    steps: ks.inputs["steps"] as number,
    checkpoint: ck?.inputs["ckpt_name"],
    width: lat?.inputs["width"],
  };
}

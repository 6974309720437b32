/**
 * Which model folder a command uses: --model when given; else the newest cached model converted
 * from the default repo (any dtype the user pulled, fp32 first); else pull and convert it now, with
 * a progress bar, so the first run works out of the box.
 */
// @pickrank/core is imported when a model is needed, not when the CLI starts (it loads the runtime).
import type { ModelManifest, PullOptions, PullResult } from "@pickrank/core";
import { StepProgress, type Io } from "./ui.ts";

export const DEFAULT_REPO = "yuvalkirstain/PickScore_v1";

export async function resolveModel(io: Io, model: string | undefined, quiet = false): Promise<string> {
  if (model) return model;
  const { listModels } = await import("@pickrank/core");
  const cached = await listModels();
  const mine = cached.filter((m: { manifest: ModelManifest }) => m.manifest.source.repo === DEFAULT_REPO);
  const pick = mine.find((m) => m.manifest.dtype === "fp32") ?? mine[0];
  if (pick) return pick.dir;
  if (!quiet) io.stderr.write(`No PickScore model in the cache yet: downloading ${DEFAULT_REPO} and converting it (once).\n`);
  return (await pullWithProgress(io, {}, quiet)).dir;
}

export async function pullWithProgress(io: Io, opts: PullOptions, quiet = false): Promise<PullResult> {
  const { pullModel } = await import("@pickrank/core");
  const progress = new StepProgress(io, quiet);
  try {
    return await pullModel({
      ...opts,
      onProgress: (p) =>
        progress.update(
          p.stage === "download" ? `download ${p.file ?? ""}` : `convert ${p.step ?? ""}`,
          // The converter's small steps (tokenizer, manifest) count 0/1 → 1/1: not bytes.
          p.total > 1 ? "bytes" : "items",
          p.done,
          p.total,
        ),
    });
  } finally {
    progress.finish();
  }
}

import { InvalidArgumentError, type Command } from "commander";
import { action, type CommandContext } from "../main.ts";
import { DEFAULT_REPO, pullWithProgress } from "../resolve-model.ts";
import { formatBytes, renderTable, StepProgress, writeJson } from "../ui.ts";
import { registerVerify } from "./model-verify.ts";

type Dtype = "fp32" | "fp16" | "int8";

function parseDtype(v: string): Dtype {
  if (v !== "fp32" && v !== "fp16" && v !== "int8") {
    throw new InvalidArgumentError(`Expected fp32, fp16 or int8 but received ${JSON.stringify(v)}.`);
  }
  return v;
}

const DTYPE_HELP =
  "fp32; fp16 (half the size, for GPUs); int8 (CPU only: encoder weights int8 per output channel, " +
  "about a quarter of fp32's size; check its rankings on your images with `pickrank model verify`)";

export function registerModel(program: Command, ctx: CommandContext): void {
  const model = program.command("model").description("Download, convert and list PickScore models");

  model
    .command("convert")
    .description("Convert a Hugging Face CLIPModel folder (config.json + model.safetensors) into ONNX graphs and a manifest")
    .argument("<hf-dir>", "folder holding config.json and model.safetensors")
    .requiredOption("--out <dir>", "model folder to write")
    .option(
      "--tokenizer <dir>",
      "tokenizer files to copy into the model folder (default: the HF folder's, else the bundled CLIP tokenizer)",
    )
    .option("--dtype <dtype>", `weights and compute precision (inputs and outputs stay fp32): ${DTYPE_HELP}`, parseDtype, "fp32")
    .option(
      "--no-fused",
      "skip the fused graph variants (com.microsoft MultiHeadAttention, SkipLayerNormalization, BiasGelu) that CUDA and WebGPU run; " +
        "int8 never has them",
    )
    .option("--json", "print the manifest as JSON")
    .action(
      action(ctx, async (hfDir: string, opts: { out: string; tokenizer?: string; dtype: Dtype; fused: boolean; json?: boolean }) => {
        const { convertModel } = await import("@pickrank/core");
        const progress = new StepProgress(ctx.io, Boolean(opts.json));
        const res = await convertModel(hfDir, {
          out: opts.out,
          dtype: opts.dtype,
          ...(opts.fused ? {} : { variants: ["standard" as const] }),
          ...(opts.tokenizer ? { tokenizerDir: opts.tokenizer } : {}),
          onProgress: (p) => progress.update(`convert ${p.stage}`, p.total > 1 ? "bytes" : "items", p.done, p.total),
        }).finally(() => progress.finish());
        if (opts.json) writeJson(ctx.io, { dir: res.dir, manifest: res.manifest });
        else ctx.io.stdout.write(res.dir + "\n");
      }),
    );

  model
    .command("pull")
    .description(
      `Download PickScore from the Hugging Face hub (HF_ENDPOINT, HF_TOKEN or huggingface-cli login honoured), verify it and convert it; instant when cached`,
    )
    .option("--repo <repo>", "model repository", DEFAULT_REPO)
    .option("--revision <rev>", "branch, tag or commit to pin", "main")
    .option("--tokenizer-repo <repo>", "repository of the tokenizer files", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
    .option("--dtype <dtype>", `${DTYPE_HELP}; on the CPU fp32 is as fast as fp16 and needs less memory`, parseDtype, "fp32")
    .option("--refresh", "check the hub for a newer commit of the revision even when a converted copy is cached")
    .option("--json", "print {dir, cached, manifest} as JSON")
    .action(
      action(
        ctx,
        async (opts: { repo: string; revision: string; tokenizerRepo: string; dtype: Dtype; refresh?: boolean; json?: boolean }) => {
          const res = await pullWithProgress(ctx.io, {
            repo: opts.repo,
            revision: opts.revision,
            tokenizerRepo: opts.tokenizerRepo,
            dtype: opts.dtype,
            refresh: Boolean(opts.refresh),
          });
          const reused = res.reused ?? [];
          const notes = res.notes ?? [];
          if (opts.json) writeJson(ctx.io, { dir: res.dir, cached: res.cached, manifest: res.manifest, reused, notes });
          else ctx.io.stdout.write(res.dir + "\n");
          // What came from the huggingface_hub cache and what was checked; a copy there that did not verify.
          if (!opts.json) for (const line of [...reused.map((f) => f.message), ...notes]) ctx.io.stderr.write(line + "\n");
          if (!res.cached && !opts.json) {
            ctx.io.stderr.write(
              `The downloaded checkpoint stays in the cache so another --dtype converts without downloading again; \`pickrank model prune\` frees it.\n`,
            );
          }
        },
      ),
    );

  registerVerify(model, ctx);

  model
    .command("list")
    .description("List the converted models in the cache")
    .option("--json", "print a JSON array")
    .action(
      action(ctx, async (opts: { json?: boolean }) => {
        const { cacheRoot, diskUsage, listModels } = await import("@pickrank/core");
        const models = await listModels();
        const sizes = await Promise.all(models.map((m) => diskUsage(m.dir)));
        if (opts.json) {
          writeJson(
            ctx.io,
            models.map((m, i) => ({
              dir: m.dir,
              repo: m.manifest.source.repo ?? null,
              revision: m.manifest.source.revision ?? null,
              dtype: m.manifest.dtype,
              bytes: sizes[i] ?? 0,
            })),
          );
          return;
        }
        if (models.length === 0) {
          ctx.io.stdout.write(`No converted models in ${cacheRoot()}. Run: pickrank model pull\n`);
          return;
        }
        ctx.io.stdout.write(
          renderTable(
            ["repo", "revision", "dtype", "size", "folder"],
            models.map((m, i) => [
              m.manifest.source.repo ?? "(local)",
              (m.manifest.source.revision ?? "").slice(0, 12),
              m.manifest.dtype,
              formatBytes(sizes[i] ?? 0),
              m.dir,
            ]),
          ),
        );
      }),
    );

  model
    .command("prune")
    .description(
      "Free cache space: remove the downloaded checkpoint of every converted model (converting another --dtype later downloads it again) " +
        "and the leftovers of interrupted conversions. Converted models, tokenizers and partial downloads (kept for resume) stay.",
    )
    .option("--dry-run", "only say what would be removed")
    .option("--json", "print {cacheDir, dryRun, removed: [{path, bytes, kind, what}], freedBytes} as JSON")
    .action(
      action(ctx, async (opts: { dryRun?: boolean; json?: boolean }) => {
        const { pruneCache } = await import("@pickrank/core");
        const res = await pruneCache({ dryRun: Boolean(opts.dryRun) });
        if (opts.json) {
          writeJson(ctx.io, res);
          return;
        }
        if (res.removed.length === 0) {
          ctx.io.stdout.write(`Nothing to prune in ${res.cacheDir}.\n`);
          return;
        }
        ctx.io.stdout.write(
          renderTable(
            ["size", "what", "path"],
            res.removed.map((r) => [formatBytes(r.bytes), r.what, r.path]),
          ),
        );
        ctx.io.stdout.write(`${res.dryRun ? "Would free" : "Freed"} ${formatBytes(res.freedBytes)}.\n`);
      }),
    );
}

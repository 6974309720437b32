/**
 * For pipeline authors: N candidate images for a prompt from one or several ComfyUI / Automatic1111
 * servers, written to a folder as they finish, with seeds recorded so any of them can be re-rendered.
 * Copy `generateToDisk` into your own pipeline, or run this file:
 *
 *   pnpm tsx --conditions=development examples/pipeline-author.ts --prompt "a lighthouse at dusk" --n 8 \
 *     --server comfyui=http://127.0.0.1:8188 --server a1111=http://user:pass@gpu2:7860 \
 *     [--workflow examples/workflows/txt2img-sd.json] [--seed 1234] [--steps 20] [--out candidates/]
 *
 * One --server uses that backend directly; several become a pool (candidates spread over the servers
 * that are up; a server that dies mid-run has its candidates re-rendered elsewhere). Ctrl-C cancels the
 * run, including the work already queued on the servers.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  PoolBackend,
  createBackend,
  type Backend,
  type BackendEvent,
  type GenerationParams,
  type PoolServerStats,
} from "@pickrank/adapters";
import type { PickrankError } from "@pickrank/contract";

export interface PipelineOptions {
  prompt: string;
  negativePrompt?: string;
  n: number;
  seed?: number;
  /** kind ("comfyui" | "a1111") and URL of each server; credentials may sit in the URL. */
  servers: { kind: string; url: string; options?: Record<string, unknown> }[];
  /** API-format ComfyUI workflow file (default: the shipped text-to-image graph). */
  workflow?: string;
  params?: GenerationParams;
  out: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface PipelineResult {
  files: { index: number; seed: number; backend: string; file: string }[];
  failed: { index: number; seed: number; backend: string; error: PickrankError }[];
  stats?: PoolServerStats[];
}

export async function generateToDisk(o: PipelineOptions): Promise<PipelineResult> {
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const workflow = o.workflow === undefined ? undefined : (JSON.parse(await readFile(o.workflow, "utf8")) as unknown);
  const members = o.servers.map((s) =>
    createBackend({
      kind: s.kind,
      url: s.url,
      ...(s.kind === "comfyui" && workflow !== undefined ? { workflow } : {}),
      ...(s.options ? { options: s.options } : {}),
    }),
  );
  const backend: Backend = members.length === 1 ? members[0]! : new PoolBackend(members, { concurrency: 2 });
  await mkdir(o.out, { recursive: true });
  const result: PipelineResult = { files: [], failed: [] };
  const onEvent = (e: BackendEvent): void => {
    if (e.type === "progress" && e.step === e.steps) log(`  ${e.backend}: candidate ${e.key ?? "?"} sampled`);
    if (e.type === "retry") log(`  candidate ${e.key} (seed ${e.seed}) moves off ${e.backend}: ${e.reason}`);
  };
  try {
    const req = {
      prompt: o.prompt,
      n: o.n,
      onEvent,
      ...(o.negativePrompt !== undefined ? { negativePrompt: o.negativePrompt } : {}),
      ...(o.seed !== undefined ? { seed: o.seed } : {}),
      ...(o.params ? { params: o.params } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    };
    for await (const c of backend.generate(req)) {
      if (!c.ok) {
        log(`✗ candidate ${c.key} (seed ${c.seed}) failed on ${c.backend}: ${c.error.message}`);
        result.failed.push({ index: Number(c.key), seed: c.seed, backend: c.backend, error: c.error });
        continue;
      }
      const file = path.join(
        o.out,
        `${c.key.padStart(3, "0")}-seed${c.seed}${c.batchIndex === undefined ? "" : `-b${c.batchIndex}`}.${c.format === "jpeg" ? "jpg" : c.format}`,
      );
      await writeFile(file, c.image);
      log(`✓ ${path.basename(file)} from ${c.backend} (queued ${c.timings.queuedMs} ms, render ${c.timings.renderMs} ms)`);
      result.files.push({ index: Number(c.key), seed: c.seed, backend: c.backend, file });
    }
  } finally {
    if (backend instanceof PoolBackend) result.stats = backend.stats();
    await backend.close();
  }
  result.files.sort((a, b) => a.index - b.index);
  // What re-renders any candidate: the prompt, its seed and the settings.
  await writeFile(
    path.join(o.out, "candidates.json"),
    `${JSON.stringify({ prompt: o.prompt, negativePrompt: o.negativePrompt, params: o.params, candidates: result.files.map(({ index, seed, backend, file }) => ({ index, seed, backend, file: path.basename(file) })), failed: result.failed.map((f) => ({ index: f.index, seed: f.seed, error: f.error.message })) }, null, 2)}\n`,
  );
  return result;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      prompt: { type: "string" },
      negative: { type: "string" },
      n: { type: "string", default: "4" },
      seed: { type: "string" },
      steps: { type: "string" },
      server: { type: "string", multiple: true },
      workflow: { type: "string" },
      out: { type: "string", default: "candidates" },
    },
  });
  if (!values.prompt || !values.server?.length) {
    process.stderr.write(
      "usage: pnpm tsx --conditions=development examples/pipeline-author.ts --prompt <text> --server comfyui=http://127.0.0.1:8188 [--server a1111=http://host:7860] [--n 4] [--out dir]\n",
    );
    process.exit(2);
  }
  const servers = values.server.map((s) => {
    const eq = s.indexOf("=");
    return eq < 0 ? { kind: "comfyui", url: s } : { kind: s.slice(0, eq), url: s.slice(eq + 1) };
  });
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort());
  const o: PipelineOptions = { prompt: values.prompt, n: Number(values.n), servers, out: values.out, signal: ac.signal };
  if (values.negative !== undefined) o.negativePrompt = values.negative;
  if (values.seed !== undefined) o.seed = Number(values.seed);
  if (values.steps !== undefined) o.params = { steps: Number(values.steps) };
  if (values.workflow !== undefined) o.workflow = values.workflow;
  const r = await generateToDisk(o);
  for (const s of r.stats ?? [])
    process.stderr.write(
      `${s.backend}: ${s.completed} done, ${s.failed} failed, ${s.imagesPerMinute.toFixed(1)} images/min${s.up ? "" : " (down)"}\n`,
    );
  process.stdout.write(`${JSON.stringify({ out: values.out, files: r.files.map((f) => f.file), failed: r.failed.length })}\n`);
  process.exitCode = r.files.length > 0 ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error & { code?: string }) => {
    process.stderr.write(`pickrank: ${e.code ? `[${e.code}] ` : ""}${e.message}\n`);
    process.exit(1);
  });
}

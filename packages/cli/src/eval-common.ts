/**
 * What the three `pickrank eval` commands share: the evaluation folder and its store (with the check
 * that a resumed run asks for what the stored rows were made with), the scorer and judge models, and
 * the failure summary that decides exit code 3.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { EXIT, PickrankError, type ErrorCode } from "@pickrank/contract";
import type { Scorer } from "@pickrank/core";
import type { EvalStore } from "@pickrank/eval";
import { resolveModel } from "./resolve-model.ts";
import { deviceLine, type Io } from "./ui.ts";
import type { DeviceOption } from "./options.ts";

/** The meta key under which a run records what it was asked (the resume check). */
export const RUN_META = "run";

/**
 * Opens `<out>/eval.duckdb`. Without `resume`, a folder whose store already holds a run is refused
 * (CONFLICT, the message says --resume); with it, the recorded settings must equal `settings`
 * (CONFLICT naming the first that differs). The settings are then recorded.
 * @throws CONFLICT as above, or when another process has the store open; FILESYSTEM for the folder.
 */
export async function openEvalDir(out: string, settings: Record<string, unknown>, resume: boolean): Promise<EvalStore> {
  const { EvalStore, STORE_FILE } = await import("@pickrank/eval");
  const store = await EvalStore.open(path.join(out, STORE_FILE));
  try {
    const before = await store.getMeta<Record<string, unknown>>(RUN_META);
    if (before !== undefined && !resume)
      throw new PickrankError(
        "CONFLICT",
        `Expected an empty evaluation folder for --out ${out} but it holds an earlier ${String(before["command"] ?? "")} run: ` +
          "pass --resume to continue it, or choose another --out",
        { details: { dir: out } },
      );
    if (before !== undefined) {
      const diff = Object.keys({ ...before, ...settings }).find((k) => JSON.stringify(before[k]) !== JSON.stringify(settings[k]));
      if (diff !== undefined)
        throw new PickrankError(
          "CONFLICT",
          `Expected --resume to ask for what the stored run in ${out} was made with, but ${diff} differs ` +
            `(stored ${JSON.stringify(before[diff])}, now ${JSON.stringify(settings[diff])}); use another --out for new settings`,
          { details: { dir: out, setting: diff } },
        );
    }
    await store.setMeta(RUN_META, settings);
    return store;
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** Whether `dir` holds anything (an --out that is not new). */
export async function folderHasFiles(dir: string): Promise<boolean> {
  return (await readdir(dir).catch(() => [])).length > 0;
}

/** Options for the models of an evaluation. */
export interface ModelFlags {
  model?: string;
  judge?: string;
  device: DeviceOption;
  batchSize: number;
  quiet?: boolean;
}

/**
 * The selector's scorer (the --model folder, or the cached PickScore) and, with --judge, the judge
 * (any converted CLIP model folder), on the same device choice. The caller disposes both.
 * @throws what Scorer.create throws (BAD_MODEL, DEVICE_UNAVAILABLE …), the judge's naming --judge.
 */
export async function loadModels(io: Io, f: ModelFlags): Promise<{ scorer: Scorer; judge?: Scorer; modelDir: string }> {
  const { Scorer } = await import("@pickrank/core");
  const modelDir = await resolveModel(io, f.model, Boolean(f.quiet));
  const scorer = await Scorer.create({ model: modelDir, device: f.device, batchSize: f.batchSize });
  if (!f.quiet) io.stderr.write(deviceLine(scorer));
  if (f.judge === undefined) return { scorer, modelDir };
  try {
    const judge = await Scorer.create({ model: f.judge, device: f.device, batchSize: f.batchSize });
    return { scorer, judge, modelDir };
  } catch (e) {
    await scorer.dispose();
    const err = e instanceof PickrankError ? e : new PickrankError("BAD_MODEL", String(e), { cause: e });
    throw new PickrankError(err.code, `--judge ${f.judge}: ${err.message}`, {
      cause: err,
      ...(err.details ? { details: err.details } : {}),
    });
  }
}

/** Failures grouped by code, for stderr and the summary: `{code, count, example}` by count. */
export function groupByCode(
  failures: readonly { error: PickrankError; what: string }[],
): { code: ErrorCode; count: number; example: string }[] {
  const m = new Map<ErrorCode, { code: ErrorCode; count: number; example: string }>();
  for (const f of failures) {
    const g = m.get(f.error.code) ?? { code: f.error.code, count: 0, example: `${f.what}: ${f.error.message}` };
    g.count++;
    m.set(f.error.code, g);
  }
  return [...m.values()].sort((a, b) => b.count - a.count);
}

/**
 * Exit code of an evaluation that ran to its end: 0 when everything asked was scored, else 3 (PARTIAL)
 * with one line per cause on stderr.
 */
export function outcomeExit(io: Io, asked: number, scored: number, failures: readonly { error: PickrankError; what: string }[]): number {
  if (scored >= asked && failures.length === 0) return EXIT.OK;
  io.stderr.write(`pickrank: partial: ${scored} of ${asked} scored [PARTIAL]\n`);
  for (const g of groupByCode(failures)) io.stderr.write(`  ${g.count} × ${g.code}, e.g. ${g.example}\n`);
  return EXIT.PARTIAL;
}

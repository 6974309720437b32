/**
 * What the three `pickrank eval` commands share: the evaluation folder and its store (with the check
 * that a resumed run asks for what the stored rows were made with), the scorer and judge models, and
 * the failure summary that decides exit codes 3 (part scored) and 1 (nothing scored).
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
 * Opens `<out>/eval.duckdb`. Without `resume`, a folder whose store already holds a run's rows is refused
 * (CONFLICT, the message says --resume); with it, the recorded settings must equal `settings`
 * (CONFLICT naming the first field that differs, see settingsDifference). A store whose earlier run
 * stored no row (it failed before anything was scored) counts as empty. The settings are then recorded.
 * Call it once the arguments and inputs are checked: it creates the folder and the store.
 * @throws CONFLICT as above, or when another process has the store open; FILESYSTEM for the folder.
 */
export async function openEvalDir(out: string, settings: Record<string, unknown>, resume: boolean): Promise<EvalStore> {
  const { EvalStore, STORE_FILE } = await import("@pickrank/eval");
  const store = await EvalStore.open(path.join(out, STORE_FILE));
  try {
    const recorded = await store.getMeta<Record<string, unknown>>(RUN_META);
    const rows = await store.query("select (select count(*) from candidates) + (select count(*) from pairs) as n");
    const before = Number(rows[0]?.["n"] ?? 0) > 0 ? recorded : undefined;
    if (before !== undefined && !resume)
      throw new PickrankError(
        "CONFLICT",
        `Expected an empty evaluation folder for --out ${out} but it holds an earlier evaluation ` +
          `(pickrank eval ${String(before["command"] ?? "?")}): pass --resume to continue it, or choose another --out`,
        { details: { dir: out } },
      );
    const diff = before !== undefined ? settingsDifference(before, settings) : undefined;
    if (diff !== undefined)
      throw new PickrankError(
        "CONFLICT",
        `Expected --resume to ask for what the stored run in ${out} was made with, but ${diff.text} (stored → now); ` +
          `for new settings choose another --out, or delete ${out}`,
        { details: { dir: out, setting: diff.setting } },
      );
    await store.setMeta(RUN_META, settings);
    return store;
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** A value in a CONFLICT message: strings bare, the rest as JSON, at most 60 characters. */
function brief(v: unknown): string {
  const s = v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 59)}…` : s;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;

/** The first leaf (by key order, depth first) where `a` and `b` differ, as a path; undefined when they are equal. */
function firstDifference(a: unknown, b: unknown, at: string[] = []): { path: string[]; a: unknown; b: unknown } | undefined {
  if (JSON.stringify(a) === JSON.stringify(b)) return undefined;
  const sameShape = Array.isArray(a) ? Array.isArray(b) && a.length === b.length : !Array.isArray(b);
  if (isRecord(a) && isRecord(b) && sameShape)
    for (const k of Object.keys({ ...a, ...b })) {
      const d = firstDifference(a[k], b[k], [...at, k]);
      if (d) return d;
    }
  return { path: at, a, b };
}

/** "checkpoint nope.safetensors → sd15.safetensors": a difference's field (params.* by its own name) and values. */
function change(d: { path: string[]; a: unknown; b: unknown }): string {
  const field = (d.path[0] === "params" ? d.path.slice(1) : d.path).join(".");
  return `${field || "it"} ${brief(d.a)} → ${brief(d.b)}`;
}

/**
 * The first difference between recorded and asked settings, in a line: the setting and its two values;
 * for `configs`, the configuration (by name) and its field, e.g.
 * `configuration "sd15" differs: checkpoint nope.safetensors → sd15.safetensors`. Undefined when equal.
 */
export function settingsDifference(
  before: Record<string, unknown>,
  now: Record<string, unknown>,
): { setting: string; text: string } | undefined {
  const setting = Object.keys({ ...before, ...now }).find((k) => JSON.stringify(before[k]) !== JSON.stringify(now[k]));
  if (setting === undefined) return undefined;
  const [was, is] = [before[setting], now[setting]];
  if (setting === "configs" && Array.isArray(was) && Array.isArray(is)) {
    const name = (c: unknown) => String(isRecord(c) ? c["name"] : c);
    for (const c of is) {
      const old = was.find((o) => name(o) === name(c));
      if (old === undefined) return { setting, text: `configuration "${name(c)}" is new` };
      const d = firstDifference(old, c);
      if (d) return { setting, text: `configuration "${name(c)}" differs: ${change(d)}` };
    }
    const gone = was.find((o) => !is.some((c) => name(c) === name(o)));
    if (gone !== undefined) return { setting, text: `configuration "${name(gone)}" is no longer asked for` };
    return { setting, text: `the configurations' order differs: ${brief(was.map(name))} → ${brief(is.map(name))}` };
  }
  const d = firstDifference(was, is, [setting])!;
  return { setting, text: `${d.path.join(".")} differs: ${brief(d.a)} → ${brief(d.b)}` };
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
 * Exit code of an evaluation that ran to its end: 0 when everything asked was scored; 1 (FAILURE) when
 * something was asked and nothing was scored, the stderr line naming the first failure's code and message;
 * else 3 (PARTIAL). Then one line per cause on stderr.
 */
export function outcomeExit(io: Io, asked: number, scored: number, failures: readonly { error: PickrankError; what: string }[]): number {
  if (scored >= asked && failures.length === 0) return EXIT.OK;
  const first = failures[0];
  if (scored === 0 && asked > 0)
    io.stderr.write(
      `pickrank: failed: none of ${asked} scored` +
        (first ? `; the first failure: ${first.what}: ${first.error.message} [${first.error.code}]\n` : "\n"),
    );
  else io.stderr.write(`pickrank: partial: ${scored} of ${asked} scored [PARTIAL]\n`);
  for (const g of groupByCode(failures)) io.stderr.write(`  ${g.count} × ${g.code}, e.g. ${g.example}\n`);
  return scored === 0 && asked > 0 ? EXIT.FAILURE : EXIT.PARTIAL;
}

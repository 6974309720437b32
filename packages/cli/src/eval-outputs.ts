/**
 * The files an evaluation ends with, from the store alone (so a resumed run's outputs cover every
 * stored row): summary.json (what was asked, counts, failures, and the metrics of summarizeRun /
 * summarizePairs with their methods), candidates.csv, and report.html (renderReport); each written
 * atomically. With --json the summary also goes to stdout; otherwise a short table.
 */
import path from "node:path";
import type { PickrankError } from "@pickrank/contract";
import type { EvalPrompt, EvalStore } from "@pickrank/eval";
import { groupByCode } from "./eval-common.ts";
import { renderTable, shortPath, writeJson, type Io } from "./ui.ts";

/** The summary document's format name and version. */
export const SUMMARY_FORMAT = { run: "pickrank-eval-summary", version: 1 } as const;

interface OutputFlags {
  out: string;
  bootstrap: number;
  json?: boolean;
  quiet?: boolean;
  tieThreshold?: number;
}

/** What a run or images evaluation hands to writeRunOutputs. */
export interface RunOutputInput {
  /** What was asked (settings, prompt set …), copied to the summary's top. */
  header: Record<string, unknown>;
  prompts: readonly EvalPrompt[];
  configs: readonly string[];
  asked: number;
  failures: readonly { error: PickrankError; what: string }[];
}

/**
 * Writes summary.json, candidates.csv and report.html for the rows of `input.prompts` × `input.configs`.
 * @throws FILESYSTEM naming the file and --out; BAD_INPUT from summarizeRun for rows that do not fit.
 */
export async function writeRunOutputs(io: Io, store: EvalStore, f: OutputFlags, input: RunOutputInput): Promise<void> {
  const ev = await import("@pickrank/eval");
  const ids = new Set(input.prompts.map((p) => p.id));
  const configs = new Set(input.configs);
  const keep = <T extends { promptId: string; config: string }>(r: T) => ids.has(r.promptId) && configs.has(r.config);
  const all = (await store.candidates()).filter(keep);
  const rows = (await store.candidateRows()).filter(keep);
  const withRows = input.configs.filter((c) => rows.some((r) => r.config === c));
  const metrics =
    rows.length > 0 ? ev.summarizeRun(input.prompts, rows, { bootstrap: { resamples: f.bootstrap }, configs: withRows }) : null;
  const doc = {
    format: SUMMARY_FORMAT.run,
    version: SUMMARY_FORMAT.version,
    ...input.header,
    counts: { asked: input.asked, stored: all.length, scored: rows.length, failed: input.failures.length },
    failures: groupByCode(input.failures),
    metrics,
  };
  await ev.writeOutput(f.out, ev.OUTPUT_FILES.summary, JSON.stringify(doc, null, 2) + "\n");
  await ev.writeOutput(f.out, ev.OUTPUT_FILES.candidates, await ev.candidatesCsv(all, input.prompts));
  if (metrics)
    await ev.writeOutput(
      f.out,
      ev.OUTPUT_FILES.report,
      ev.renderReport(metrics, { title: `pickrank eval ${String(input.header["command"])}` }),
    );
  if (f.json) writeJson(io, doc);
  else printRunTable(io, doc.counts, metrics, f.out);
}

function printRunTable(io: Io, counts: { asked: number; scored: number }, metrics: unknown, out: string): void {
  const m = metrics as { configs?: { name: string; prompts: number; bestOfK?: { points: { k: number; mean: number }[] } }[] } | null;
  const rows = (m?.configs ?? []).map((c) => {
    const pts = c.bestOfK?.points ?? [];
    const first = pts[0];
    const last = pts[pts.length - 1];
    return [c.name, String(c.prompts), first ? first.mean.toFixed(4) : "", last ? `${last.mean.toFixed(4)} (k=${last.k})` : ""];
  });
  if (rows.length > 0)
    io.stdout.write(renderTable(["config", "prompts", "random pick", "best of k"], rows, ["left", "right", "right", "right"]));
  io.stdout.write(`${counts.scored}/${counts.asked} scored; summary, CSV and report in ${shortPath(path.resolve(out))}\n`);
}

/** What a pairs evaluation hands to writePairsOutputs. */
export interface PairsOutputInput {
  header: Record<string, unknown>;
  failures: readonly { error: PickrankError; what: string }[];
}

/** Writes summary.json (summarizePairs over every stored pair) and prints the accuracies. */
export async function writePairsOutputs(io: Io, store: EvalStore, f: OutputFlags, input: PairsOutputInput): Promise<void> {
  const ev = await import("@pickrank/eval");
  const rows = await store.pairs();
  const metrics =
    rows.length > 0
      ? ev.summarizePairs(rows, {
          bootstrap: { resamples: f.bootstrap },
          ...(f.tieThreshold !== undefined ? { tieThreshold: f.tieThreshold } : {}),
        })
      : null;
  const doc = {
    format: "pickrank-eval-pairs",
    version: 1,
    ...input.header,
    counts: { stored: rows.length, failed: input.failures.length },
    failures: groupByCode(input.failures),
    metrics,
  };
  await ev.writeOutput(f.out, ev.OUTPUT_FILES.summary, JSON.stringify(doc, null, 2) + "\n");
  if (f.json) {
    writeJson(io, doc);
    return;
  }
  const acc = (i: { mean: number; low: number; high: number } | null | undefined) =>
    i ? `${(100 * i.mean).toFixed(1)}% [${(100 * i.low).toFixed(1)}, ${(100 * i.high).toFixed(1)}]` : "n/a";
  if (metrics) {
    const t = metrics.tieProtocol;
    io.stdout.write(`tie protocol (t = ${t.threshold} from ${t.thresholdFrom}): ${acc(t.accuracy as never)}\n`);
    io.stdout.write(`ties dropped (${metrics.tiesDropped.pairs} pairs): ${acc(metrics.tiesDropped.accuracy as never)}\n`);
  }
  io.stdout.write(`${rows.length} pairs scored; summary in ${shortPath(path.resolve(f.out))}\n`);
}

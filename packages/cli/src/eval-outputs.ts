/**
 * The files an evaluation ends with, from the store alone (so a resumed run's outputs cover every
 * stored row): summary.json (what was asked, counts, failures, and the metrics of summarizeRun /
 * summarizePairs with their methods), candidates.csv, and report.html (renderReport); each written
 * atomically. With --json the summary also goes to stdout; otherwise a short table.
 */
import path from "node:path";
import type { PickrankError } from "@pickrank/contract";
import type { EvalPrompt, EvalStore, Interval, RunSummary } from "@pickrank/eval";
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
  if (metrics) {
    const html = ev.renderReport({ title: `pickrank eval ${String(input.header["command"])}`, run: metrics, prompts: input.prompts, rows });
    await ev.writeOutput(f.out, ev.OUTPUT_FILES.report, html);
  }
  if (f.json) writeJson(io, doc);
  else printRunTable(io, doc.counts, metrics, f.out);
  // The summary's notes say what a metric left out and why (no shared seeds, missing judge scores …).
  if (!f.json && !f.quiet) for (const n of metrics?.notes ?? []) io.stderr.write(`note: ${n}\n`);
}

/** "21.430 [21.200, 21.660]": an estimate with its interval. */
function interval(i: Interval | null | undefined, scale = 1, digits = 3): string {
  return i ? `${(scale * i.estimate).toFixed(digits)} [${(scale * i.lo).toFixed(digits)}, ${(scale * i.hi).toFixed(digits)}]` : "–";
}

function printRunTable(io: Io, counts: { asked: number; scored: number }, metrics: RunSummary | null, out: string): void {
  const rows = (metrics?.configs ?? []).map((c) => {
    const pts = c.selector.curve.points;
    const last = pts[pts.length - 1];
    const judged = c.judge?.curve.points;
    return [
      c.config,
      String(c.prompts),
      interval(pts[0]),
      `${interval(last)} (k=${last?.k ?? "?"})`,
      judged ? `${interval(judged[0])} → ${interval(judged[judged.length - 1])}` : "–",
    ];
  });
  const head = ["config", "prompts", "random pick", "best of k", "judge: random → pick of k"];
  if (rows.length > 0) io.stdout.write(renderTable(head, rows, ["left", "right", "right", "right", "right"]));
  const files = metrics ? "summary.json, candidates.csv and report.html" : "summary.json and candidates.csv";
  io.stdout.write(`${counts.scored}/${counts.asked} scored; ${files} in ${shortPath(path.resolve(out))}\n`);
}

/** What a pairs evaluation hands to writePairsOutputs. */
export interface PairsOutputInput {
  header: Record<string, unknown>;
  failures: readonly { error: PickrankError; what: string }[];
}

/**
 * Writes summary.json (summarizePairs over every stored pair) and, when a pair is stored, report.html;
 * prints the accuracies and a last line naming the files written.
 */
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
  if (metrics) await ev.writeOutput(f.out, ev.OUTPUT_FILES.report, ev.renderReport({ title: "pickrank eval pairs", pairs: metrics }));
  if (f.json) {
    writeJson(io, doc);
    return;
  }
  if (metrics) {
    const t = metrics.tieProtocol;
    io.stdout.write(`accuracy, tie protocol (t = ${t.threshold}, ${t.thresholdFrom}): ${interval(t.accuracy, 100, 1)} %\n`);
    io.stdout.write(`accuracy, ties dropped (${metrics.tiesDropped.pairs} pairs): ${interval(metrics.tiesDropped.accuracy, 100, 1)} %\n`);
  }
  const files = metrics ? "summary.json and report.html" : "summary.json";
  io.stdout.write(`${rows.length} pairs scored; ${files} in ${shortPath(path.resolve(f.out))}\n`);
}

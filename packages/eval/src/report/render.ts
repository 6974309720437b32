/**
 * `renderReport`: one self-contained HTML file — tables rendered here, figures drawn in the browser by
 * ECharts, whose minified build is inlined, from the summaries embedded as JSON. No network request:
 * no CDN, no web font, images only from the caller's paths or data URIs.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fsError, invalidParameter } from "@pickrank/contract";
import { RUN_METHODS } from "../stats/methods.ts";
import { CLIENT_SCRIPT } from "./client.ts";
import { gallery } from "./gallery.ts";
import { esc, jsonForScript } from "./html.ts";
import { bradleyTerryTable, curveTables, groupTable, overviewTable, pairsTable, winRateDetailTable, winRateTable } from "./tables.ts";
import type { ReportInput } from "./types.ts";

let echartsSource: string | undefined;

/** ECharts' minified browser build (dist/echarts.min.js), read once. @throws NOT_FOUND/FILESYSTEM when it cannot be read. */
function echartsScript(): string {
  if (echartsSource === undefined) {
    let file = "echarts/dist/echarts.min.js";
    try {
      file = createRequire(import.meta.url).resolve(file);
      echartsSource = readFileSync(file, "utf8").replace(/<\/script/gi, "<\\/script");
    } catch (e) {
      throw fsError(e, { action: "read", path: file, expected: "the echarts package installed beside @pickrank/eval" });
    }
  }
  return echartsSource;
}

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.75rem 0 1.5rem; font-size: 13px; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { border-bottom: 1px solid #ddd; padding: 0.2rem 0.5rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figure { width: 100%; height: 380px; margin: 0.5rem 0 1rem; }
.method, .notes { color: #555; font-size: 12px; }
.tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.tile { margin: 0; width: 160px; font-size: 11px; }
.tile img { width: 160px; height: 160px; object-fit: cover; display: block; background: #eee; }
.tile.pick img { outline: 3px solid #3ba272; }
.config-row h4 { margin: 0.4rem 0 0.2rem; }
.prompt { margin: 0.1rem 0 0.3rem; color: #444; }
`;

function figure(id: string, title: string): string {
  return `<h3>${esc(title)}</h3><div class="figure" id="${esc(id)}" data-figure="${esc(id)}"></div>`;
}

/** The run's sections: overview, curves, distributions, groups, comparisons. */
function runSections(input: ReportInput): string {
  const run = input.run;
  if (!run || run.configs.length === 0) return "";
  const judged = run.configs.some((c) => c.judge !== null);
  const parts = [`<h2 id="selection">What selection gains</h2>`, overviewTable(run)];
  parts.push(figure("fig-curve-selector", "Best of k under the selector (bands: bootstrap intervals over prompts)"));
  if (judged) parts.push(figure("fig-curve-judge", "The judge's score of the selector's pick among k"));
  parts.push(
    `<p class="method">${esc(RUN_METHODS.bestOfK)}. ${esc(RUN_METHODS.judgeOfPick)}. ` +
      `${esc(run.bootstrap.method)}; B = ${run.bootstrap.resamples}, seed ${run.bootstrap.seed}.</p>`,
  );
  parts.push(curveTables(run));
  parts.push(`<h2 id="distributions">Score distributions</h2>`, figure("fig-dist-selector", "Selector scores of every candidate"));
  if (judged) parts.push(figure("fig-dist-judge", "Judge scores of every candidate"));
  if (run.breakdowns.some((g) => g.field === "category"))
    parts.push(figure("fig-group-category", "Gain over a random pick per category (k = N)"));
  if (run.breakdowns.some((g) => g.field === "challenge"))
    parts.push(figure("fig-group-challenge", "Gain over a random pick per challenge (k = N)"));
  parts.push(groupTable(run));
  if (run.configs.length > 1) {
    parts.push(`<h2 id="comparisons">Configurations at equal seeds</h2>`);
    for (const score of ["selector", "judge"] as const) {
      if (!run.winRates.some((w) => w.score === score && w.rate !== null)) continue;
      parts.push(figure(`fig-win-${score}`, `Win rate, ${score} score: row over column`), winRateTable(run, score));
    }
    parts.push(winRateDetailTable(run), bradleyTerryTable(run));
    parts.push(`<p class="method">${esc(RUN_METHODS.winRate)}. ${esc(RUN_METHODS.bradleyTerry)}.</p>`);
  }
  if (run.notes.length > 0) parts.push(`<ul class="notes">${run.notes.map((n) => `<li>${esc(n)}</li>`).join("")}</ul>`);
  return parts.join("\n");
}

function pairsSection(input: ReportInput): string {
  const p = input.pairs;
  if (!p) return "";
  const parts = [`<h2 id="pairs">Agreement with human labels</h2>`, pairsTable(p)];
  if (p.tieProtocol.sweep.length > 0) parts.push(figure("fig-pairs-sweep", "Validation accuracy per tie threshold t"));
  return parts.join("\n");
}

/**
 * Renders the evaluation report as one HTML string that works offline (ECharts inlined; no request
 * leaves the page but the gallery's images, from the paths or data URIs given). Sections: per
 * configuration the numbers at k = N, best-of-k curves with interval bands (selector, and judge when
 * present), score distributions, per-category and per-challenge bars, the win-rate matrix and
 * Bradley–Terry ratings, the pairs accuracy table, and a gallery (each prompt's pick beside the rest).
 * Table numbers: formatValue (integers as they are, others with three decimals), each cell carrying
 * its exact JSON value (`data-value`) and JSON pointer (`data-json`, into `data-doc` "run" or "pairs").
 * The summaries are embedded in `<script id="pickrank-data" type="application/json">` as {run, pairs}.
 * @throws BAD_INPUT when neither `run` nor `pairs` is given or an image source is a network URL;
 * NOT_FOUND when ECharts is not installed.
 */
export function renderReport(input: ReportInput): string {
  if (!input.run && !input.pairs) throw invalidParameter("report input", "a run summary, a pairs summary, or both", input);
  const title = input.title ?? "pickrank eval";
  const body = [
    `<h1>${esc(title)}</h1>`,
    input.subtitle ? `<p class="method">${esc(input.subtitle)}</p>` : "",
    runSections(input),
    pairsSection(input),
    gallery(input),
  ].join("\n");
  const data = jsonForScript({ run: input.run ?? null, pairs: input.pairs ?? null });
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(title)}</title><style>${STYLE}</style></head><body>`,
    body,
    `<script id="pickrank-data" type="application/json">${data}</script>`,
    `<script>${echartsScript()}</script>`,
    `<script>${CLIENT_SCRIPT}</script>`,
    "</body></html>",
    "",
  ].join("\n");
}

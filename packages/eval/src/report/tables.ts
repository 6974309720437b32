/**
 * The report's tables, built from the summaries alone. Every number cell is numCell: formatted by
 * formatValue, carrying its exact JSON value and pointer.
 */
import type { PairsSummary } from "../stats/pairs.ts";
import type { Interval, RunSummary } from "../stats/types.ts";
import { esc, numCell, table, textCell } from "./html.ts";

type Path = (string | number)[];

/** Three cells for an interval at `path` (estimate, lo, hi); three dashes for null. */
function intervalCells(iv: Interval | null, doc: "run" | "pairs", path: Path): string[] {
  return (["estimate", "lo", "hi"] as const).map((f) => numCell(iv ? iv[f] : null, doc, iv ? [...path, f] : path));
}

/** One row per configuration: sizes and the numbers at k = kMax. */
export function overviewTable(run: RunSummary): string {
  const rows = run.configs.map((c, i) => {
    const last = c.kMax - 1;
    const base: Path = ["configs", i];
    const cells = [
      textCell(c.config),
      numCell(c.prompts, "run", [...base, "prompts"]),
      numCell(c.candidates, "run", [...base, "candidates"]),
      numCell(c.kMax, "run", [...base, "kMax"]),
      ...intervalCells(c.selector.curve.points[last]!, "run", [...base, "selector", "curve", "points", last]),
      ...intervalCells(c.selector.gainOverRandom.points[last]!, "run", [...base, "selector", "gainOverRandom", "points", last]),
      ...(c.selector.gainOverFirstSeed
        ? intervalCells(c.selector.gainOverFirstSeed.points[last]!, "run", [...base, "selector", "gainOverFirstSeed", "points", last])
        : intervalCells(null, "run", [...base, "selector", "gainOverFirstSeed"])),
    ];
    return cells;
  });
  const head = ["configuration", "prompts", "candidates", "k = N"];
  for (const m of ["best of N", "gain over random", "gain over first seed"]) head.push(m, "lo", "hi");
  const level = Math.round(run.bootstrap.confidence * 1000) / 10; // 0.57 · 100 is 56.99999999999999 in binary
  return table(`Selector (${level} % intervals, bootstrap over prompts)`, head, rows, "overview");
}

/** Best-of-k per configuration: k, selector curve and (when present) the judge's score of the pick. */
export function curveTables(run: RunSummary): string {
  return run.configs
    .map((c, i) => {
      const rows = c.selector.curve.points.map((p, j) => {
        const cells = [numCell(p.k, "run", ["configs", i, "selector", "curve", "points", j, "k"])];
        cells.push(...intervalCells(p, "run", ["configs", i, "selector", "curve", "points", j]));
        cells.push(
          ...intervalCells(c.selector.gainOverRandom.points[j]!, "run", ["configs", i, "selector", "gainOverRandom", "points", j]),
        );
        if (c.judge) cells.push(...intervalCells(c.judge.curve.points[j]!, "run", ["configs", i, "judge", "curve", "points", j]));
        return cells;
      });
      const head = ["k", "selector best of k", "lo", "hi", "gain over random", "lo", "hi"];
      if (c.judge) head.push("judge score of the pick", "lo", "hi");
      return table(`Best of k: ${c.config}`, head, rows, `curve-${i}`);
    })
    .join("\n");
}

/** Per category and per challenge, at k = kMax. */
export function groupTable(run: RunSummary): string {
  if (run.breakdowns.length === 0) return "";
  const judged = run.breakdowns.some((g) => g.judgePickScore !== null);
  const rows = run.breakdowns.map((g, i) => {
    const base: Path = ["breakdowns", i];
    const cells = [textCell(g.field), textCell(g.value), textCell(g.config), numCell(g.prompts, "run", [...base, "prompts"])];
    cells.push(numCell(g.k, "run", [...base, "k"]));
    cells.push(...intervalCells(g.selectorBestOfK, "run", [...base, "selectorBestOfK"]));
    cells.push(...intervalCells(g.selectorGainOverRandom, "run", [...base, "selectorGainOverRandom"]));
    if (judged) cells.push(...intervalCells(g.judgePickScore, "run", [...base, "judgePickScore"]));
    return cells;
  });
  const head = ["field", "value", "configuration", "prompts", "k", "best of k", "lo", "hi", "gain over random", "lo", "hi"];
  if (judged) head.push("judge score of the pick", "lo", "hi");
  return table("Per category and challenge (k = N)", head, rows, "groups");
}

/** The win-rate matrix of one score: row a, column b, cell = rate of a over b. */
export function winRateTable(run: RunSummary, score: "selector" | "judge"): string {
  const names = run.configs.map((c) => c.config);
  const rows = names.map((a) => {
    const cells = [textCell(a)];
    for (const b of names) {
      const idx = run.winRates.findIndex((w) => w.a === a && w.b === b && w.score === score);
      const w = run.winRates[idx];
      if (!w) cells.push("<td>·</td>");
      else cells.push(numCell(w.rate?.estimate ?? null, "run", w.rate ? ["winRates", idx, "rate", "estimate"] : ["winRates", idx, "rate"]));
    }
    return cells;
  });
  return table(`Win rate at equal seeds (${score} score): row over column, ties ½`, ["", ...names], rows, `winrate-${score}`);
}

/** Every win rate with its counts and interval. */
export function winRateDetailTable(run: RunSummary): string {
  const rows = run.winRates.map((w, i) => [
    textCell(w.a),
    textCell(w.b),
    textCell(w.score),
    numCell(w.pairs, "run", ["winRates", i, "pairs"]),
    numCell(w.wins, "run", ["winRates", i, "wins"]),
    numCell(w.ties, "run", ["winRates", i, "ties"]),
    numCell(w.losses, "run", ["winRates", i, "losses"]),
    ...intervalCells(w.rate, "run", ["winRates", i, "rate"]),
  ]);
  return table("Win rates with intervals", ["a", "b", "score", "pairs", "wins", "ties", "losses", "rate", "lo", "hi"], rows, "winrates");
}

/** Bradley–Terry ratings, when present. */
export function bradleyTerryTable(run: RunSummary): string {
  return run.bradleyTerry
    .map((bt, i) => {
      const rows = bt.ratings.map((r, j) => [
        textCell(r.config),
        numCell(r.strength, "run", ["bradleyTerry", i, "ratings", j, "strength"]),
        numCell(r.logStrength, "run", ["bradleyTerry", i, "ratings", j, "logStrength"]),
        numCell(r.logStrengthInterval.lo, "run", ["bradleyTerry", i, "ratings", j, "logStrengthInterval", "lo"]),
        numCell(r.logStrengthInterval.hi, "run", ["bradleyTerry", i, "ratings", j, "logStrengthInterval", "hi"]),
      ]);
      return table(
        `Bradley–Terry (${bt.score} score, ${bt.priorTies} virtual tie(s) per pair)`,
        ["configuration", "strength", "log strength", "lo", "hi"],
        rows,
        `bt-${bt.score}`,
      );
    })
    .join("\n");
}

/** Pair accuracy: the paper's tie protocol and ties dropped, with counts and the threshold. */
export function pairsTable(p: PairsSummary): string {
  const rows = [
    [
      textCell("Pick-a-Pic tie protocol"),
      numCell(p.pairs.test, "pairs", ["pairs", "test"]),
      numCell(p.pairs.testTies, "pairs", ["pairs", "testTies"]),
      numCell(p.tieProtocol.threshold, "pairs", ["tieProtocol", "threshold"]),
      numCell(p.tieProtocol.predictedTies, "pairs", ["tieProtocol", "predictedTies"]),
      ...intervalCells(p.tieProtocol.accuracy, "pairs", ["tieProtocol", "accuracy"]),
    ],
    [
      textCell("ties dropped"),
      numCell(p.tiesDropped.pairs, "pairs", ["tiesDropped", "pairs"]),
      '<td class="num">0</td>',
      "<td>–</td>",
      "<td>–</td>",
      ...intervalCells(p.tiesDropped.accuracy, "pairs", ["tiesDropped", "accuracy"]),
    ],
  ];
  const head = ["protocol", "test pairs", "tie labels", "threshold t", "predicted ties", "accuracy", "lo", "hi"];
  const from = `Threshold from: ${esc(p.tieProtocol.thresholdFrom)}`;
  const note = `<p class="method">${esc(p.tieProtocol.method)}. ${from}. ${esc(p.tiesDropped.method)}.</p>`;
  return table("Agreement with human labels", head, rows, "pairs-table") + note;
}

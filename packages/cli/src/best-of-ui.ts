/**
 * What people see of `pickrank best-of`: the ranked table on stdout, progress and warnings on
 * stderr, one summary of the failures grouped by cause, and the exit code of the outcome.
 */
import { EXIT } from "@pickrank/contract";
import { describeFailures, formatProb, formatScore, type BestOfBatchResult, type BestOfEvent, type BestOfResult } from "@pickrank/selector";
import { formatBytes, renderTable, shortPath, type Align, type Io } from "./ui.ts";

const fmtScore = formatScore;

function printRun(io: Io, r: BestOfResult, header: string | undefined): void {
  const out = io.stdout;
  if (header) out.write(`${header}\n`);
  if (r.scorePrompt !== r.prompt) out.write(`scored as: ${r.scorePrompt}\n`);
  const picked = new Set(r.top.map((c) => c.index));
  const cwd = process.cwd();
  const headers = ["rank", "seed", "score", "prob"];
  const align: Align[] = ["right", "right", "right", "right"];
  if (r.refine) {
    headers.push("draft rank", "draft score");
    align.push("right", "right");
  }
  headers.push("top", "saved");
  align.push("left", "left");
  const rows = r.ranked.map((c) => {
    const row = [String(c.rank), String(c.seed), fmtScore(c.score), formatProb(c.prob)];
    if (r.refine) row.push(c.draft ? `${c.draft.rank}/${r.refine.drafts.length}` : "", c.draft ? fmtScore(c.draft.score) : "");
    row.push(picked.has(c.index) ? "*" : "", c.file ? shortPath(c.file, cwd) : "");
    return row;
  });
  out.write(renderTable(headers, rows, align));
  if (r.refine) {
    const rf = r.refine;
    const n2 = (x: number | null) => (x === null ? "n/a" : x.toFixed(2));
    out.write(
      `draft-then-refine: ${rf.drafts.length} drafts, best ${rf.k} re-rendered; ` +
        `agreement Spearman ${n2(rf.spearman)}, Kendall ${n2(rf.kendall)}; draft's best ` +
        `${rf.bestStayedBest === null ? "failed to re-render" : rf.bestStayedBest ? "stayed best" : `ended at rank ${rf.draftBestFinalRank}`}` +
        "\n",
    );
  }
  if (r.diverse && r.diverse.skipped.length > 0) {
    const s = r.diverse.skipped.filter((x) => !x.filled);
    if (s.length > 0)
      out.write(
        `diverse: skipped ${s.map((x) => `seed ${x.seed} (cos ${x.cosine.toFixed(3)})`).join(", ")} ` +
          `as near-duplicates (threshold ${r.diverse.threshold})\n`,
      );
  }
}

/** The ranked table of every run on stdout (failures are summarised on stderr by reportOutcome). */
export function printBestOfResult(io: Io, result: BestOfResult | BestOfBatchResult): void {
  if ("runs" in result) {
    result.runs.forEach((r, i) => {
      if (i > 0) io.stdout.write("\n");
      printRun(io, r, `prompt: ${r.prompt}`);
    });
    if (result.out) io.stdout.write(`\nresult: ${shortPath(result.out.resultFile)}\n`);
  } else {
    printRun(io, result, undefined);
    if (result.out) io.stdout.write(`result: ${shortPath(result.out.resultFile)}\n`);
  }
  if (result.out?.work && result.out.work.files > 0) {
    const w = result.out.work;
    io.stdout.write(
      `work: ${w.files} rendered candidates (${formatBytes(w.bytes)}) kept in ${shortPath(w.dir)}, ` +
        "so the same command with another --top, --diverse or --keep re-selects without rendering; delete that folder to free the space\n",
    );
  }
}

/** Candidates asked for in a run: N, plus the k re-rendered in draft-then-refine. */
function asked(r: BestOfResult): number {
  return r.refine ? r.n + r.refine.k : r.n;
}

/**
 * After a run: one summary of the failures grouped by cause (stderr, whatever --quiet says), and the
 * exit code — 0 complete (or partial accepted by --min), 3 partial (EXIT.PARTIAL), 1 when no
 * prompt of a batch made a result.
 * @param text rewrites API option names in messages into flags.
 */
export function reportOutcome(
  io: Io,
  result: BestOfResult | BestOfBatchResult,
  o: { text: (s: string) => string; minFlag: string },
): number {
  const err = io.stderr;
  const runs = "runs" in result ? result.runs : [result];
  const batch = "runs" in result;
  let partial = false;
  for (const r of runs) {
    if (r.outcome === "complete") continue;
    const who = batch ? `prompt ${JSON.stringify(r.prompt)}: ` : "";
    const accepted = r.minSurvivors !== null;
    partial ||= !accepted;
    err.write(
      `pickrank: ${who}${r.failed.length} of ${asked(r)} candidate renders failed; ` +
        `the best is chosen from the ${r.ranked.length} that survived${accepted ? ` (accepted: ${o.minFlag} ${r.minSurvivors})` : ""}:\n`,
    );
    for (const line of describeFailures(r.failures)) err.write(`  ${o.text(line)}\n`);
  }
  if (batch)
    for (const pe of result.errors)
      err.write(`pickrank: prompt ${pe.promptIndex + 1} failed: ${o.text(pe.error.message)} [${pe.error.code}]\n`);
  if (batch && result.runs.length === 0) return EXIT.FAILURE;
  if (partial || (batch && result.errors.length > 0)) {
    err.write(`pickrank: fewer candidates than asked; pass ${o.minFlag} <m> to accept a partial run [PARTIAL]\n`);
    return EXIT.PARTIAL;
  }
  return EXIT.OK;
}

/**
 * Progress on stderr: candidates rendered and scored per prompt and per server. On a terminal one
 * line is redrawn (≤10/s); in a log, a line per prompt phase and one when it finishes. Warnings
 * (a backend's, a setting that does nothing) print at once, whatever --quiet says.
 */
export class BestOfProgress {
  #rendered = 0;
  #scored = 0;
  #failed = 0;
  #total = 0;
  #phase = "";
  #drafted = false;
  #prompt = 0;
  #step = "";
  #last = 0;
  #perServer = new Map<string, number>();
  #active = false;
  #quarter = 0;

  constructor(
    private readonly io: Io,
    private readonly prompts: number,
    private readonly quiet: boolean,
    private readonly text: (s: string) => string = (s) => s,
  ) {}

  on(e: BestOfEvent): void {
    if (e.type === "warning") {
      this.#clear();
      this.io.stderr.write(
        `pickrank: warning: ${this.prompts > 1 && e.promptIndex !== undefined ? `[${e.promptIndex + 1}/${this.prompts}] ` : ""}` +
          `${this.text(e.message)}\n`,
      );
      return;
    }
    if (this.quiet) return;
    switch (e.type) {
      case "prompt-start":
        this.#start(e);
        break;
      case "rendered":
        this.#rendered = e.rendered;
        if (!e.reused) this.#perServer.set(e.backend, (this.#perServer.get(e.backend) ?? 0) + 1);
        break;
      case "scored":
        this.#scored = e.scored;
        this.#logQuarter(e.scored, e.total);
        break;
      case "failed":
        this.#failed++;
        break;
      case "backend":
        if (e.event.type === "progress") this.#step = `, sampling step ${e.event.step}/${e.event.steps}`;
        break;
      case "prompt-done":
        this.#clear();
        if (e.error) this.io.stderr.write(`${this.#label(e.promptIndex)} failed: ${this.text(e.error.message)}\n`);
        else if (e.best)
          this.io.stderr.write(`${this.#label(e.promptIndex)} done: best seed ${e.best.seed}, score ${e.best.score.toFixed(3)}\n`);
        return;
      case "written":
        return;
    }
    this.#draw();
  }

  #start(e: Extract<BestOfEvent, { type: "prompt-start" }>): void {
    if (e.promptIndex !== this.#prompt) this.#drafted = false;
    this.#prompt = e.promptIndex;
    this.#phase = e.phase;
    if (e.phase === "draft") this.#drafted = true;
    this.#total = e.n;
    this.#rendered = this.#scored = this.#failed = 0;
    this.#step = "";
    this.#quarter = 0;
    if (!this.io.stderr.isTTY)
      this.io.stderr.write(`${this.#label()} rendering ${e.n}${e.reused > 0 ? ` (${e.reused} from the journal)` : ""}\n`);
  }

  /** In a log: a line at each quarter of the candidates scored, not one per event. */
  #logQuarter(scored: number, total: number): void {
    if (this.io.stderr.isTTY || total < 4 || scored >= total) return;
    const q = Math.floor((4 * scored) / total);
    if (q > this.#quarter) {
      this.#quarter = q;
      this.io.stderr.write(`${this.#line()}\n`);
    }
  }

  #label(pi = this.#prompt): string {
    const phase = this.#phase === "draft" ? "draft" : this.#drafted ? "refine" : "best-of";
    return `${this.prompts > 1 ? `[${pi + 1}/${this.prompts}] ` : ""}${phase}`;
  }

  #line(): string {
    const servers = [...this.#perServer].map(([k, v]) => `${k} ${v}`).join(", ");
    return (
      `${this.#label()}: rendered ${this.#rendered}/${this.#total}, scored ${this.#scored}/${this.#total}` +
      `${this.#failed ? `, failed ${this.#failed}` : ""}${this.#step}${servers ? ` (renders per server: ${servers})` : ""}`
    );
  }

  #draw(): void {
    if (!this.io.stderr.isTTY) return;
    const now = Date.now();
    if (now - this.#last < 100) return;
    this.#last = now;
    this.#active = true;
    this.io.stderr.write(`\r${this.#line()}\x1b[K`);
  }

  #clear(): void {
    if (this.#active) this.io.stderr.write("\r\x1b[K");
    this.#active = false;
  }

  stop(): void {
    this.#clear();
  }
}

/**
 * The output folder of a run: the kept images as PNG (with text chunks that ComfyUI / Automatic1111
 * "PNG info" readers show), `result.json`, and a progress journal that lets a re-run with the same
 * prompt and settings pick up where a killed run stopped instead of rendering everything again.
 *
 * Layout:
 *   <dir>/rank-01-seed-1234.png …          one prompt
 *   <dir>/prompt-001/rank-01-seed-1234.png  several prompts
 *   <dir>/result.json
 *   <dir>/.pickrank/journal.jsonl            settings + every finished candidate + every file written
 *   <dir>/.pickrank/work/…                   the candidates' bytes as the backend sent them
 *
 * Every file is written to a temporary name and renamed into place (a reader never sees half a file),
 * a candidate is journaled only after its bytes are on disk, and a file that this run did not write is
 * never replaced: that is a CONFLICT.
 */
import { appendFile, mkdir, readdir, readFile, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { PickrankError, toPickrankError } from "@pickrank/contract";
import { acquireLock, type HeldLock, pathExists as exists, writeFileAtomic } from "@pickrank/contract";
import { isPng, readPngText, setPngText } from "./png-text.ts";
import type { BestOfResult, CandidateTimings, ModelInfo, Phase, RankedCandidate } from "./types.ts";

export const JOURNAL_DIR = ".pickrank";
export const JOURNAL_FILE = "journal.jsonl";
export const RESULT_FILE = "result.json";
const JOURNAL_VERSION = 1;

export interface StoredCandidate {
  index: number;
  seed: number;
  backend: string;
  format: "png" | "jpeg" | "webp";
  timings: CandidateTimings;
  /** Relative to the journal folder. */
  file: string;
}

type JournalLine =
  | { t: "run"; version: number; settings: unknown; seed: number; startedAt: string }
  | ({ t: "cand"; p: number; phase: Phase } & StoredCandidate)
  | { t: "out"; file: string };

/** JSON with object keys sorted, so two equal settings objects give equal strings. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === "object" && !Array.isArray(val)) {
      return Object.fromEntries(Object.entries(val as Record<string, unknown>).filter(([, x]) => x !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    }
    return val;
  });
}

function isOurOutputName(name: string): boolean {
  return name === RESULT_FILE || /^(rank|draft)-\d+-seed-\d+\.png$/.test(name) || /^prompt-\d+$/.test(name);
}

function settingsDiff(a: unknown, b: unknown): string[] {
  if (!a || !b || typeof a !== "object" || typeof b !== "object") return ["settings"];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => canonicalJson((a as Record<string, unknown>)[k]) !== canonicalJson((b as Record<string, unknown>)[k])).sort();
}

export class OutputDir {
  readonly dir: string;
  readonly keep: "top" | "all";
  /** The first seed of the run (from the journal when resuming). */
  readonly seed: number;
  readonly resuming: boolean;
  private readonly journalDir: string;
  private readonly journalFile: string;
  private readonly candidates = new Map<string, StoredCandidate>();
  private readonly outputs = new Set<string>();
  /** Files this process wrote; on completion, outputs of an earlier pass of the same run that are no longer selected are removed. */
  private readonly writtenNow = new Set<string>();
  resumedCount = 0;

  private constructor(dir: string, keep: "top" | "all", seed: number, resuming: boolean) {
    this.dir = dir;
    this.keep = keep;
    this.seed = seed;
    this.resuming = resuming;
    this.journalDir = path.join(dir, JOURNAL_DIR);
    this.journalFile = path.join(this.journalDir, JOURNAL_FILE);
  }

  /**
   * Opens (or creates) the folder. `settings` is everything that decides which images get rendered;
   * a journal with other settings is a CONFLICT (say which fields differ), as is a folder holding
   * pickrank-looking outputs without a journal.
   */
  static async open(opts: { dir: string; keep?: "top" | "all"; resume?: boolean; settings: Record<string, unknown>; seed: number | undefined; randomSeed: () => number }): Promise<OutputDir> {
    const dir = path.resolve(opts.dir);
    const keep = opts.keep ?? "top";
    const journalFile = path.join(dir, JOURNAL_DIR, JOURNAL_FILE);
    const st = await stat(dir).catch(() => undefined);
    if (st && !st.isDirectory()) {
      throw new PickrankError("CONFLICT", `Expected --out to be a folder but ${dir} is a file`, { details: { dir } });
    }
    let lines: JournalLine[] = [];
    let tornTail = false;
    if (st) {
      if (await exists(journalFile)) {
        const text = await readFile(journalFile, "utf8");
        lines = parseJournal(text);
        tornTail = text.length > 0 && !text.endsWith("\n");
        const head = lines[0];
        // Nothing readable at all (killed while writing the first line): nothing to resume, start afresh.
        if (lines.length === 0) tornTail = false;
        else if (!head || head.t !== "run" || head.version !== JOURNAL_VERSION) {
          throw new PickrankError("CONFLICT", `The progress journal ${journalFile} is unreadable or from another version; expected a pickrank v${JOURNAL_VERSION} journal. Choose another output folder or delete this one`, { details: { dir } });
        }
        const want = canonicalJson(opts.settings);
        if (head && head.t === "run" && canonicalJson(head.settings) !== want) {
          const fields = settingsDiff(head.settings, opts.settings);
          throw new PickrankError(
            "CONFLICT",
            `Output folder ${dir} holds another run (different ${fields.join(", ")}); expected the same prompt and settings to resume it, or a new folder`,
            { details: { dir, differs: fields } },
          );
        }
        if (lines.length > 0 && opts.resume === false) {
          throw new PickrankError("CONFLICT", `Output folder ${dir} already holds this run; expected a new folder (or allow resuming)`, { details: { dir } });
        }
      } else {
        const clash = (await readdir(dir)).filter(isOurOutputName);
        if (clash.length > 0) {
          throw new PickrankError(
            "CONFLICT",
            `Output folder ${dir} already holds ${clash.slice(0, 3).join(", ")}${clash.length > 3 ? " …" : ""} from another run and has no progress journal; expected an empty or new folder (nothing is overwritten silently)`,
            { details: { dir, files: clash } },
          );
        }
      }
    }
    const head = lines[0];
    const resuming = head?.t === "run";
    const seed = resuming ? head.seed : (opts.seed ?? opts.randomSeed());
    const o = new OutputDir(dir, keep, seed, resuming);
    await mkdir(path.join(o.journalDir, "work"), { recursive: true });
    await o.lock();
    if (resuming) {
      // A kill mid-append leaves a torn last line; end it so the next record starts on its own line.
      if (tornTail) await appendFile(journalFile, "\n");
      for (const l of lines) {
        // Only files under work/ (a hand-edited journal must not make us read elsewhere).
        if (l.t === "cand" && /^work\/[^/\\]+$/.test(l.file) && (await exists(path.join(o.journalDir, l.file)))) {
          const { t: _t, p, phase, ...c } = l;
          o.candidates.set(`${p}/${phase}/${c.index}`, c);
        } else if (l.t === "out") {
          o.outputs.add(l.file);
        }
      }
    } else {
      // Replaces an unreadable leftover journal instead of appending to it.
      const header: JournalLine = { t: "run", version: JOURNAL_VERSION, settings: opts.settings, seed, startedAt: new Date().toISOString() };
      await writeFileAtomic(o.journalFile, JSON.stringify(header) + "\n");
    }
    return o;
  }

  private heldLock: HeldLock | undefined;

  /**
   * One writer per folder: two runs appending to one journal would interleave. A lock left by a
   * killed run (its process is gone) is taken over, so kill -9 and re-run just works.
   */
  private async lock(): Promise<void> {
    this.heldLock = await acquireLock(path.join(this.journalDir, "lock"), {
      wait: false,
      onHeld: (holder) =>
        new PickrankError("CONFLICT", `Output folder ${this.dir} is in use by another pickrank run (pid ${holder.pid}); expected one run per folder at a time`, {
          details: { dir: this.dir, ...(typeof holder.pid === "number" ? { pid: holder.pid } : {}) },
        }),
    });
  }

  /** Releases the folder (the journal stays, so the run can be resumed or re-selected later). */
  async close(): Promise<void> {
    await this.heldLock?.release();
  }

  private async append(line: JournalLine): Promise<void> {
    // One appendFile per line: a kill mid-write leaves at most one torn last line, which the reader skips.
    await appendFile(this.journalFile, JSON.stringify(line) + "\n");
  }

  stored(promptIndex: number, phase: Phase, index: number): StoredCandidate | undefined {
    return this.candidates.get(`${promptIndex}/${phase}/${index}`);
  }

  async load(c: StoredCandidate): Promise<Buffer> {
    return readFile(path.join(this.journalDir, c.file));
  }

  /** Puts the candidate's bytes on disk, then records it: a journal line always has its file. */
  async save(promptIndex: number, phase: Phase, c: Omit<StoredCandidate, "file"> & { image: Buffer }): Promise<void> {
    const file = `work/p${promptIndex}-${phase}-${c.index}-seed-${c.seed}.${c.format === "jpeg" ? "jpg" : c.format}`;
    await writeFileAtomic(path.join(this.journalDir, file), c.image);
    const rec: StoredCandidate = { index: c.index, seed: c.seed, backend: c.backend, format: c.format, timings: c.timings, file };
    await this.append({ t: "cand", p: promptIndex, phase, ...rec });
    this.candidates.set(`${promptIndex}/${phase}/${c.index}`, rec);
  }

  /** Writes the kept images of one prompt as PNG with metadata and sets `file` on them. */
  async writePrompt(result: BestOfResult, promptIndex: number, batch: boolean): Promise<string[]> {
    const sub = batch ? `prompt-${String(promptIndex + 1).padStart(3, "0")}` : "";
    const folder = path.join(this.dir, sub);
    await mkdir(folder, { recursive: true });
    const width = Math.max(2, String(result.n).length);
    const files: string[] = [];
    const keepList: { c: RankedCandidate; name: string; draft: boolean }[] = [];
    const ranked = this.keep === "all" ? result.ranked : result.top;
    for (const c of ranked) keepList.push({ c, name: `rank-${String(c.rank).padStart(width, "0")}-seed-${c.seed}.png`, draft: false });
    if (this.keep === "all" && result.refine) {
      for (const c of result.refine.drafts) keepList.push({ c, name: `draft-${String(c.rank).padStart(width, "0")}-seed-${c.seed}.png`, draft: true });
    }
    for (const { c, name, draft } of keepList) {
      const rel = path.join(sub, name);
      const abs = path.join(this.dir, rel);
      if (!this.outputs.has(rel) && !this.writtenNow.has(rel) && (await exists(abs))) {
        throw new PickrankError("CONFLICT", `${abs} already exists and was not written by this run; expected a free file name (nothing is overwritten silently)`, { details: { file: abs } });
      }
      const png = await toPngWithMetadata(c, result, draft);
      await writeFileAtomic(abs, png);
      if (!this.outputs.has(rel)) await this.append({ t: "out", file: rel });
      this.outputs.add(rel);
      this.writtenNow.add(rel);
      c.file = abs;
      files.push(abs);
    }
    return files;
  }

  get resultFile(): string {
    return path.join(this.dir, RESULT_FILE);
  }

  async writeResult(json: unknown): Promise<void> {
    await writeFileAtomic(this.resultFile, JSON.stringify(json, null, 2) + "\n");
  }

  /** Removes outputs an earlier pass of this same run wrote that this pass did not select again. */
  async pruneStale(): Promise<void> {
    for (const rel of this.outputs) {
      if (!this.writtenNow.has(rel)) await unlink(path.join(this.dir, rel)).catch(() => {});
    }
  }
}


function parseJournal(text: string): JournalLine[] {
  const out: JournalLine[] = [];
  for (const raw of text.split("\n")) {
    if (!raw.trim()) continue;
    try {
      out.push(JSON.parse(raw) as JournalLine);
    } catch {
      // A torn last line from a killed run: that candidate is simply rendered again.
    }
  }
  return out;
}

function fmt(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

/** The Automatic1111 infotext ("parameters") for a candidate, with the PickScore fields appended. */
export function infotext(c: RankedCandidate, r: BestOfResult, existing?: string, draft = false): string {
  // Draft images are entries of refine.drafts: their score/prob/rank are the draft pass's own.
  const of = draft && r.refine ? r.refine.drafts.length : r.ranked.length;
  const ours = [
    `PickScore: ${fmt(c.score, 4)}`,
    `PickScore prob: ${fmt(c.prob, 4)}`,
    `PickScore rank: ${c.rank}/${of}`,
    `PickScore model: ${r.model.repo ?? path.basename(r.model.dir)}`,
  ].join(", ");
  if (existing && existing.trim()) {
    // A1111's parser reads the last line as "key: value" pairs, so ours go at its end.
    return `${existing.replace(/\s+$/, "")}, ${ours}`;
  }
  const p = draft && r.refine ? r.refine.draftParams : r.params;
  const fields: string[] = [];
  if (p.steps !== undefined) fields.push(`Steps: ${p.steps}`);
  if (p.sampler !== undefined) fields.push(`Sampler: ${p.sampler}`);
  if (p.scheduler !== undefined) fields.push(`Schedule type: ${p.scheduler}`);
  if (p.cfgScale !== undefined) fields.push(`CFG scale: ${p.cfgScale}`);
  fields.push(`Seed: ${c.seed}`);
  if (p.width !== undefined && p.height !== undefined) fields.push(`Size: ${p.width}x${p.height}`);
  if (p.checkpoint !== undefined) fields.push(`Model: ${p.checkpoint}`);
  const lines = [r.prompt.replace(/\n/g, " ")];
  if (r.negativePrompt) lines.push(`Negative prompt: ${r.negativePrompt.replace(/\n/g, " ")}`);
  lines.push(`${fields.join(", ")}, ${ours}`);
  return lines.join("\n");
}

/** Everything about the candidate as JSON in the `pickrank` chunk (ASCII-only, so it fits a tEXt chunk). */
export function pickrankChunk(c: RankedCandidate, r: BestOfResult, draft = false): string {
  const json = JSON.stringify({
    version: 1,
    prompt: r.prompt,
    negativePrompt: r.negativePrompt,
    seed: c.seed,
    score: c.score,
    prob: c.prob,
    rank: c.rank,
    of: draft && r.refine ? r.refine.drafts.length : r.ranked.length,
    draft: draft || undefined,
    model: { repo: r.model.repo, revision: r.model.revision, dtype: r.model.dtype },
    backend: c.backend,
    draftScores: !draft && c.draft ? c.draft : undefined,
    params: draft && r.refine ? r.refine.draftParams : r.params,
  });
  return json.replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export async function toPngWithMetadata(c: RankedCandidate, r: BestOfResult, draft = false): Promise<Buffer> {
  let png: Buffer;
  if (c.format === "png" && isPng(c.image)) png = c.image;
  else {
    try {
      const { default: sharp } = await import("sharp"); // loaded on first use: only non-PNG candidates need it
      png = await sharp(c.image).png().toBuffer();
    } catch (e) {
      throw toPickrankError(e, "BAD_IMAGE", `Could not convert the ${c.format} candidate with seed ${c.seed} to PNG`);
    }
  }
  const existing = readPngText(png)["parameters"];
  return setPngText(png, { parameters: infotext(c, r, existing, draft), pickrank: pickrankChunk(c, r, draft) });
}

export type { ModelInfo };

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
import { appendFileSync } from "node:fs";
import { readdir, readFile, stat, unlink } from "node:fs/promises";
import path from "node:path";
import { PickrankError, toPickrankError, type RenderSettings } from "@pickrank/contract";
import { acquireLock, fsError, type HeldLock, makeDir, pathExists as exists, writeFileAtomic } from "@pickrank/contract";
import { formatProb, formatScore } from "./format.ts";
import { isPng, readPngText, setPngText } from "./png-text.ts";
import type { JournalRecord } from "./produce.ts";
import type { BestOfResult, ModelInfo, Phase, RankedCandidate, WorkUsage } from "./types.ts";

/** The folder inside an output folder that holds the progress journal and the work files. */
export const JOURNAL_DIR = ".pickrank";
/** The progress journal's file name inside JOURNAL_DIR (one JSON record per line). */
export const JOURNAL_FILE = "journal.jsonl";
/** The file name of the run's result inside the output folder. */
export const RESULT_FILE = "result.json";
const JOURNAL_VERSION = 1;

/** A journal record; `file` is relative to the journal folder. */
export type StoredCandidate = JournalRecord;

type JournalLine =
  | { t: "run"; version: number; settings: unknown; seed: number; startedAt: string }
  | ({ t: "cand"; p: number; phase: Phase } & StoredCandidate)
  | { t: "out"; file: string };

/** JSON with object keys sorted, so two equal settings objects give equal strings. */
export function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) => {
    if (val && typeof val === "object" && !Array.isArray(val)) {
      return Object.fromEntries(
        Object.entries(val as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
      );
    }
    return val;
  });
}

function isOurOutputName(name: string): boolean {
  return name === RESULT_FILE || /^(rank|draft)-\d+-seed-\d+\.png$/.test(name) || /^prompt-\d+$/.test(name);
}

/** The settings fields that differ, one level into objects ("backend.workflow"), so a CONFLICT can name them. */
function settingsDiff(a: unknown, b: unknown, prefix = ""): string[] {
  const isObj = (v: unknown): v is Record<string, unknown> => Boolean(v) && typeof v === "object" && !Array.isArray(v);
  if (!isObj(a) || !isObj(b)) return [prefix || "settings"];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys]
    .filter((k) => canonicalJson(a[k]) !== canonicalJson(b[k]))
    .flatMap((k) => (prefix === "" && isObj(a[k]) && isObj(b[k]) ? settingsDiff(a[k], b[k], `${k}.`) : [`${prefix}${k}`]))
    .sort();
}

/**
 * An output folder of bestOf: the kept images, result.json, and the progress journal under `.pickrank/`
 * that records every candidate so a re-run with the same settings resumes. A journal of other settings
 * or another version is a CONFLICT; filesystem failures throw FILESYSTEM or NOT_FOUND.
 */
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

  /** The CLI option or API field the folder came from ("--out"), named in filesystem errors. */
  readonly option: string;

  private constructor(dir: string, keep: "top" | "all", seed: number, resuming: boolean, option: string) {
    this.option = option;
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
  static async open(opts: {
    dir: string;
    keep?: "top" | "all";
    resume?: boolean;
    settings: Record<string, unknown>;
    seed: number | undefined;
    randomSeed: () => number;
    /** How messages name the folder's option (default "out"). */
    option?: string;
  }): Promise<OutputDir> {
    const dir = path.resolve(opts.dir);
    const keep = opts.keep ?? "top";
    const option = opts.option ?? "out";
    const journalFile = path.join(dir, JOURNAL_DIR, JOURNAL_FILE);
    const fsFail = (e: unknown, action: string, p: string) =>
      fsError(e, { action, path: p, option, expected: "a folder pickrank can create and write" });
    const st = await stat(dir).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw fsFail(e, "read the output folder", dir);
    });
    if (st && !st.isDirectory()) {
      throw new PickrankError("FILESYSTEM", `Expected a folder for ${option} but ${dir} is a file`, { details: { path: dir, option } });
    }
    const { lines, tornTail } = st ? await readExisting(dir, journalFile, opts, fsFail) : { lines: [], tornTail: false };
    const head = lines[0];
    const resuming = head?.t === "run";
    const seed = resuming ? head.seed : (opts.seed ?? opts.randomSeed());
    const o = new OutputDir(dir, keep, seed, resuming, option);
    const work = path.join(o.journalDir, "work");
    await makeDir(work).catch((e: unknown) => {
      // The level that failed (Node sets it), which is usually the --out folder itself.
      throw fsFail(e, "create the output folder", (e as NodeJS.ErrnoException).path ?? work);
    });
    await o.lock();
    if (resuming) {
      // A kill mid-append leaves a torn last line; end it so the next record starts on its own line.
      if (tornTail) o.appendRaw("\n");
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
      const header: JournalLine = {
        t: "run",
        version: JOURNAL_VERSION,
        settings: opts.settings,
        seed,
        startedAt: new Date().toISOString(),
      };
      await writeFileAtomic(o.journalFile, JSON.stringify(header) + "\n", option);
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
      option: this.option,
      onHeld: (holder) =>
        new PickrankError(
          "CONFLICT",
          `Output folder ${this.dir} is in use by another pickrank run (pid ${holder.pid}); expected one run per folder at a time`,
          {
            details: { dir: this.dir, ...(typeof holder.pid === "number" ? { pid: holder.pid } : {}) },
          },
        ),
    });
  }

  /** Releases the folder (the journal stays, so the run can be resumed or re-selected later). */
  async close(): Promise<void> {
    await this.heldLock?.release();
  }

  private async append(line: JournalLine): Promise<void> {
    this.appendRaw(JSON.stringify(line) + "\n");
  }

  /**
   * Synchronous on purpose: a signal handler (a second Ctrl-C, SIGTERM) runs between JavaScript
   * tasks, never inside this call, so a record is on disk whole before any exit; a kill -9 mid-write
   * leaves at most one torn last line, which the reader skips. One line is a few hundred bytes.
   */
  private appendRaw(text: string): void {
    try {
      appendFileSync(this.journalFile, text);
    } catch (e) {
      throw fsError(e, { action: "append to the progress journal", path: this.journalFile, option: this.option });
    }
  }

  stored(promptIndex: number, phase: Phase, index: number): StoredCandidate | undefined {
    return this.candidates.get(`${promptIndex}/${phase}/${index}`);
  }

  async load(c: StoredCandidate): Promise<Buffer> {
    const file = path.join(this.journalDir, c.file);
    this.resumedCount++;
    return readFile(file).catch((e: unknown) => {
      throw fsError(e, { action: "read the recorded candidate", path: file, option: this.option });
    });
  }

  /** Puts the candidate's bytes on disk, then records it: a journal line always has its file. */
  async save(promptIndex: number, phase: Phase, c: Omit<StoredCandidate, "file"> & { image: Buffer }): Promise<void> {
    const file = `work/p${promptIndex}-${phase}-${c.index}-seed-${c.seed}.${c.format === "jpeg" ? "jpg" : c.format}`;
    await writeFileAtomic(path.join(this.journalDir, file), c.image, this.option);
    const rec: StoredCandidate = {
      index: c.index,
      seed: c.seed,
      backend: c.backend,
      format: c.format,
      timings: c.timings,
      ...(c.meta ? { meta: c.meta } : {}),
      file,
    };
    await this.append({ t: "cand", p: promptIndex, phase, ...rec });
    this.candidates.set(`${promptIndex}/${phase}/${c.index}`, rec);
  }

  /** Writes the kept images of one prompt as PNG with metadata and sets `file` on them. */
  async writePrompt(result: BestOfResult, promptIndex: number, batch: boolean): Promise<string[]> {
    const sub = batch ? `prompt-${String(promptIndex + 1).padStart(3, "0")}` : "";
    const folder = path.join(this.dir, sub);
    await makeDir(folder).catch((e: unknown) => {
      throw fsError(e, { action: "create the output folder", path: (e as NodeJS.ErrnoException).path ?? folder, option: this.option });
    });
    const width = Math.max(2, String(result.n).length);
    const files: string[] = [];
    const keepList: { c: RankedCandidate; name: string; draft: boolean }[] = [];
    const ranked = this.keep === "all" ? result.ranked : result.top;
    for (const c of ranked) keepList.push({ c, name: `rank-${String(c.rank).padStart(width, "0")}-seed-${c.seed}.png`, draft: false });
    if (this.keep === "all" && result.refine) {
      for (const c of result.refine.drafts)
        keepList.push({ c, name: `draft-${String(c.rank).padStart(width, "0")}-seed-${c.seed}.png`, draft: true });
    }
    for (const { c, name, draft } of keepList) {
      const rel = path.join(sub, name);
      const abs = path.join(this.dir, rel);
      if (!this.outputs.has(rel) && !this.writtenNow.has(rel) && (await exists(abs))) {
        throw new PickrankError(
          "CONFLICT",
          `${abs} already exists and was not written by this run; expected a free file name (nothing is overwritten silently)`,
          { details: { file: abs } },
        );
      }
      const png = await toPngWithMetadata(c, result, draft);
      await writeFileAtomic(abs, png, this.option);
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
    await writeFileAtomic(this.resultFile, JSON.stringify(json, null, 2) + "\n", this.option);
  }

  /**
   * The candidates' bytes kept under `.pickrank/work`: every rendered candidate stays there after a
   * complete run, also with keep "top", because re-running the same command with another top k,
   * --diverse or keep re-selects from them without rendering again. Deleting the folder frees the
   * space; a later re-run then renders what it needs again.
   */
  async workUsage(): Promise<WorkUsage> {
    const dir = path.join(this.journalDir, "work");
    let files = 0;
    let bytes = 0;
    for (const d of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (!d.isFile() || d.name.endsWith(".tmp")) continue;
      const st = await stat(path.join(dir, d.name)).catch(() => undefined);
      if (!st) continue;
      files++;
      bytes += st.size;
    }
    return { dir, files, bytes };
  }

  /** Removes outputs an earlier pass of this same run wrote that this pass did not select again. */
  async pruneStale(): Promise<void> {
    for (const rel of this.outputs) {
      if (!this.writtenNow.has(rel)) await unlink(path.join(this.dir, rel)).catch(() => {});
    }
  }
}

/**
 * What an existing output folder holds: its journal's lines (a CONFLICT when they are another run's
 * or another version's, or when resuming is off), or, without a journal, a CONFLICT when it holds
 * pickrank-looking outputs.
 */
async function readExisting(
  dir: string,
  journalFile: string,
  opts: { settings: Record<string, unknown>; resume?: boolean | undefined },
  fsFail: (e: unknown, action: string, p: string) => PickrankError,
): Promise<{ lines: JournalLine[]; tornTail: boolean }> {
  if (!(await exists(journalFile))) {
    const names = await readdir(dir).catch((e: unknown) => {
      throw fsFail(e, "list the output folder", dir);
    });
    const clash = names.filter(isOurOutputName);
    if (clash.length > 0) {
      throw new PickrankError(
        "CONFLICT",
        `Output folder ${dir} already holds ${clash.slice(0, 3).join(", ")}${clash.length > 3 ? " …" : ""} from another run and has no progress journal; expected an empty or new folder (nothing is overwritten silently)`,
        { details: { dir, files: clash } },
      );
    }
    return { lines: [], tornTail: false };
  }
  const text = await readFile(journalFile, "utf8").catch((e: unknown) => {
    throw fsFail(e, "read the progress journal", journalFile);
  });
  const lines = parseJournal(text);
  const head = lines[0];
  // Nothing readable at all (killed while writing the first line): nothing to resume, start afresh.
  if (lines.length === 0) return { lines, tornTail: false };
  if (head?.t !== "run" || head.version !== JOURNAL_VERSION) {
    throw new PickrankError(
      "CONFLICT",
      `The progress journal ${journalFile} is unreadable or from another version; expected a pickrank v${JOURNAL_VERSION} journal. Choose another output folder or delete this one`,
      { details: { dir } },
    );
  }
  if (canonicalJson(head.settings) !== canonicalJson(opts.settings)) {
    const fields = settingsDiff(head.settings, opts.settings);
    throw new PickrankError(
      "CONFLICT",
      `Output folder ${dir} holds another run (different ${fields.join(", ")}); expected the same prompt and settings to resume it, or a new folder`,
      { details: { dir, differs: fields } },
    );
  }
  if (opts.resume === false) {
    throw new PickrankError("CONFLICT", `Output folder ${dir} already holds this run; expected a new folder (or allow resuming)`, {
      details: { dir },
    });
  }
  // A kill mid-append leaves a torn last line (open() ends it before appending).
  return { lines, tornTail: text.length > 0 && !text.endsWith("\n") };
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

/** A1111's `quote()` for infotext values: JSON-quoted when it holds a comma, a colon, a quote or a newline. */
function quote(v: string | number): string {
  const s = String(v);
  return /[,:"\n]/.test(s) ? JSON.stringify(s) : s;
}

/** The checkpoint as A1111 names it in "Model:": the file name without folder and extension. */
function modelName(checkpoint: string): string {
  return path.basename(checkpoint.replace(/\\/g, "/")).replace(/\.(safetensors|ckpt|pt|pth|bin|gguf|sft)$/i, "");
}

/**
 * The settings a candidate was rendered with: what the backend reported (CandidateMeta.settings)
 * over what was asked (the run's params, or the draft params for a draft).
 */
export function renderSettings(c: RankedCandidate, r: BestOfResult, draft = false): RenderSettings {
  const p = draft && r.refine ? r.refine.draftParams : r.params;
  const asked: RenderSettings = {};
  for (const k of ["checkpoint", "steps", "cfgScale", "sampler", "scheduler", "width", "height"] as const) {
    if (p[k] !== undefined) (asked as Record<string, unknown>)[k] = p[k];
  }
  if (r.negativePrompt !== undefined) asked.negativePrompt = r.negativePrompt;
  const got = Object.fromEntries(Object.entries(c.meta?.settings ?? {}).filter(([, v]) => v !== undefined)) as RenderSettings;
  return { ...asked, ...got };
}

/** "PickScore: 21.341, PickScore prob: 0.4100, PickScore rank: 1/8, PickScore model: …[, PickScore prompt: …]". */
function pickScoreFields(c: RankedCandidate, r: BestOfResult, draft: boolean): string {
  // Draft images are entries of refine.drafts: their score/prob/rank are the draft pass's own.
  const of = draft && r.refine ? r.refine.drafts.length : r.ranked.length;
  const fields = [
    `PickScore: ${formatScore(c.score)}`,
    `PickScore prob: ${formatProb(c.prob)}`,
    `PickScore rank: ${c.rank}/${of}`,
    `PickScore model: ${quote(r.model.repo ?? path.basename(r.model.dir))}`,
  ];
  if (r.scorePrompt !== undefined && r.scorePrompt !== r.prompt)
    fields.push(`PickScore prompt: ${quote(r.scorePrompt.replace(/\n/g, " "))}`);
  return fields.join(", ");
}

/**
 * The Automatic1111 infotext (the PNG's `parameters` text) for a candidate, in A1111's own format:
 *
 *   prompt
 *   Negative prompt: …
 *   Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model: name, …, PickScore: 21.341,
 *   PickScore prob: 0.4100, PickScore rank: 1/8, PickScore model: yuvalkirstain/PickScore_v1[, PickScore prompt: "…"]
 *
 * When the server wrote its own infotext (`existing`, the image's `parameters` chunk, else
 * CandidateMeta.infotext from A1111) that text is kept as it is and the PickScore fields are appended
 * to its last line, which is where A1111's parser reads "key: value" pairs. Otherwise it is built from
 * {@link renderSettings}. Values with a comma, colon or quote are JSON-quoted as A1111's `quote()` does;
 * "PickScore prompt" is there only when the scoring prompt differs from the prompt. Score and prob
 * are printed as the CLI prints them ({@link formatScore}, {@link formatProb}).
 */
export function infotext(c: RankedCandidate, r: BestOfResult, existing?: string, draft = false): string {
  const ours = pickScoreFields(c, r, draft);
  const server = existing?.trim() ? existing : c.meta?.infotext?.trim() ? c.meta.infotext : undefined;
  if (server !== undefined) return `${server.replace(/\s+$/, "")}, ${ours}`;
  const s = renderSettings(c, r, draft);
  const fields: string[] = [];
  if (s.steps !== undefined) fields.push(`Steps: ${s.steps}`);
  if (s.sampler !== undefined) fields.push(`Sampler: ${quote(s.sampler)}`);
  if (s.scheduler !== undefined) fields.push(`Schedule type: ${quote(s.scheduler)}`);
  if (s.cfgScale !== undefined) fields.push(`CFG scale: ${s.cfgScale}`);
  fields.push(`Seed: ${c.seed}`);
  if (s.width !== undefined && s.height !== undefined) fields.push(`Size: ${s.width}x${s.height}`);
  if (s.checkpoint !== undefined) fields.push(`Model: ${quote(modelName(s.checkpoint))}`);
  for (const [k, v] of Object.entries(s.other ?? {})) fields.push(`${k}: ${quote(v)}`);
  const lines = [r.prompt.replace(/\n/g, " ")];
  if (s.negativePrompt) lines.push(`Negative prompt: ${s.negativePrompt.replace(/\n/g, " ")}`);
  lines.push(`${fields.join(", ")}, ${ours}`);
  return lines.join("\n");
}

/** JSON with every non-ASCII character escaped (\uXXXX), so it fits a tEXt chunk, as Python's json.dumps writes it. */
function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** Everything about the candidate as JSON in the `pickrank` chunk (ASCII-only, so it fits a tEXt chunk). */
export function pickrankChunk(c: RankedCandidate, r: BestOfResult, draft = false): string {
  return asciiJson({
    version: 1,
    prompt: r.prompt,
    scorePrompt: r.scorePrompt,
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
    settings: c.meta?.settings,
    promptId: c.meta?.promptId,
    requestedSeed: c.meta?.requestedSeed,
  });
}

/**
 * The candidate as a PNG carrying its metadata in text chunks before the image data: `parameters`
 * (the A1111 infotext, see {@link infotext}), `pickrank` (JSON, see {@link pickrankChunk}) and, for a
 * ComfyUI candidate whose image has no `prompt` chunk of the server's own, `prompt`: the API-format
 * prompt that was queued (CandidateMeta.comfyPrompt, with this candidate's seed), which ComfyUI's
 * loader opens when the image is dropped on it. ComfyUI's UI-format `workflow` chunk (node positions,
 * groups) is only there when the server wrote it: the API prompt is all pickrank sends. Chunks the
 * server wrote are kept; JPEG/WebP candidates are converted to PNG first. Throws BAD_IMAGE when the
 * bytes do not decode.
 */
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
  const present = readPngText(png);
  const entries: Record<string, string> = {
    parameters: infotext(c, r, present["parameters"], draft),
    pickrank: pickrankChunk(c, r, draft),
  };
  if (c.meta?.comfyPrompt !== undefined && present["prompt"] === undefined) entries["prompt"] = asciiJson(c.meta.comfyPrompt);
  return setPngText(png, entries);
}

export type { ModelInfo };

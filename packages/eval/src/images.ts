/**
 * `eval images`: images produced elsewhere, scored per configuration. Two ways in:
 * - folders in the HPSv2 benchmark layout, one per configuration (the folder's name):
 *   `<folder>/<style>/<index>.<ext>` with style one of anime, concept-art, paintings, photo and index the
 *   prompt's 0-based index in that style (`00012.jpg`, `12.png`), matched to the shipped HPSv2 prompts;
 * - a manifest (`.jsonl`: one `{"prompt", "file", "config"}` object a line; `.csv` with a header holding
 *   prompt, file, config), optionally with promptId and category; files relative to the manifest.
 * Several images of one (config, prompt) get seed indices 0, 1, … in manifest order.
 */
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { PickrankError, abortedError, fsError, toPickrankError } from "@pickrank/contract";
import { scoringPrompt } from "@pickrank/selector";
import { z } from "zod";
import type { EvalPrompt } from "./records.ts";
import { HPSV2_STYLES, loadPromptSet } from "./prompt-sets.ts";
import type { EvalScorer } from "./run.ts";
import { candidateKey, type EvalStore } from "./store.ts";

/** One image to score: its configuration, prompt, index among the prompt's images, and absolute path. */
export interface ImageItem {
  config: string;
  prompt: EvalPrompt;
  seedIndex: number;
  file: string;
}

const IMAGE_EXT = /\.(png|jpe?g|webp)$/i;

/**
 * Reads folders in the HPSv2 benchmark layout (see the module comment); the configuration is each
 * folder's base name. Files whose name is not an index, or past the style's prompts, are refused.
 * @throws NOT_FOUND for a missing folder; BAD_INPUT for a folder with no style subfolder, a file that
 *   does not name a prompt, or two folders with the same name.
 */
export async function collectHpsv2Folders(folders: readonly string[]): Promise<{ items: ImageItem[]; prompts: EvalPrompt[] }> {
  const set = await loadPromptSet("hpsv2");
  const byId = new Map(set.prompts.map((p) => [p.id, p]));
  const items: ImageItem[] = [];
  const names = new Set<string>();
  for (const folder of folders) {
    const config = path.basename(path.resolve(folder));
    if (names.has(config)) throw new PickrankError("BAD_INPUT", `Expected one folder per configuration but two are named ${config}`);
    names.add(config);
    let found = 0;
    for (const style of HPSV2_STYLES) {
      const dir = path.join(folder, style);
      const files = await readdir(dir).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return null;
        throw fsError(e, { action: "read the image folder", path: dir });
      });
      if (files === null) continue;
      found++;
      for (const f of files.filter((x) => IMAGE_EXT.test(x)).sort()) {
        const stem = f.replace(IMAGE_EXT, "");
        const prompt = /^\d+$/.test(stem) ? byId.get(`hpsv2-${style}-${String(Number(stem)).padStart(4, "0")}`) : undefined;
        if (!prompt)
          throw new PickrankError(
            "BAD_INPUT",
            `Expected images named by their prompt's index in ${dir} (00000.jpg … 00799.jpg, the HPSv2 benchmark layout) but found ${f}`,
            { details: { file: path.join(dir, f) } },
          );
        items.push({ config, prompt, seedIndex: 0, file: path.resolve(dir, f) });
      }
    }
    if (found === 0) {
      await readdir(folder).catch((e) => {
        throw fsError(e, { action: "read the image folder", path: folder, expected: "a folder in the HPSv2 benchmark layout" });
      });
      throw new PickrankError(
        "BAD_INPUT",
        `Expected the HPSv2 benchmark layout in ${folder} (subfolders ${HPSV2_STYLES.join(", ")} holding <index>.jpg) ` +
          "but found none of them; " +
          "for other layouts write a manifest (--manifest)",
        { details: { path: folder } },
      );
    }
  }
  const used = new Set(items.map((i) => i.prompt.id));
  return { items, prompts: set.prompts.filter((p) => used.has(p.id)) };
}

const ManifestRow = z.object({
  prompt: z.string().trim().min(1),
  file: z.string().min(1),
  config: z.string().regex(/^[A-Za-z0-9][\w.-]*$/, "a name of letters, digits, _ . -"),
  promptId: z.string().min(1).optional(),
  category: z.string().optional(),
});

/**
 * Reads a manifest (.jsonl or .csv; see the module comment). Prompts without promptId get `m-NNNN`
 * ids in order of first appearance (one id per distinct prompt text).
 * @throws NOT_FOUND for a missing manifest; BAD_INPUT naming the line of a row that is not valid.
 */
export async function readImageManifest(file: string): Promise<{ items: ImageItem[]; prompts: EvalPrompt[] }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, { action: "read the manifest", path: file, option: "--manifest" });
  }
  const raw: { line: number; value: unknown }[] = /\.csv$/i.test(file) ? await csvRows(text, file) : jsonlRows(text, file);
  const base = path.dirname(path.resolve(file));
  const prompts = new Map<string, EvalPrompt>();
  const idByText = new Map<string, string>();
  const counts = new Map<string, number>();
  const items: ImageItem[] = [];
  for (const { line, value } of raw) {
    const r = ManifestRow.safeParse(value);
    if (!r.success) {
      const issue = r.error.issues[0]!;
      throw new PickrankError("BAD_INPUT", `${file}:${line}: expected ${issue.path.join(".") || "a row"}: ${issue.message}`, {
        details: { file, line, parameter: "--manifest" },
      });
    }
    const row = r.data;
    const id = row.promptId ?? idByText.get(row.prompt) ?? `m-${String(idByText.size + 1).padStart(4, "0")}`;
    idByText.set(row.prompt, id);
    if (!prompts.has(id)) prompts.set(id, { id, text: row.prompt, ...(row.category ? { category: row.category } : {}) });
    const k = `${row.config}\t${id}`;
    const seedIndex = counts.get(k) ?? 0;
    counts.set(k, seedIndex + 1);
    items.push({ config: row.config, prompt: prompts.get(id)!, seedIndex, file: path.resolve(base, row.file) });
  }
  if (items.length === 0) throw new PickrankError("BAD_INPUT", `Expected at least one image in the manifest ${file} but found none`);
  return { items, prompts: [...prompts.values()] };
}

function jsonlRows(text: string, file: string): { line: number; value: unknown }[] {
  const out: { line: number; value: unknown }[] = [];
  text.split(/\r?\n/).forEach((l, i) => {
    if (l.trim() === "") return;
    try {
      out.push({ line: i + 1, value: JSON.parse(l) });
    } catch (e) {
      throw new PickrankError(
        "BAD_INPUT",
        `${file}:${i + 1}: expected one JSON object a line but it does not parse: ${(e as Error).message}`,
        {
          details: { file, line: i + 1 },
        },
      );
    }
  });
  return out;
}

async function csvRows(text: string, file: string): Promise<{ line: number; value: unknown }[]> {
  const { parse } = await import("csv-parse/sync");
  try {
    const recs = parse(text, { columns: true, skip_empty_lines: true, trim: true, bom: true, info: true }) as {
      record: Record<string, string>;
      info: { lines: number };
    }[];
    return recs.map((r) => ({
      line: r.info.lines,
      value: Object.fromEntries(Object.entries(r.record).filter(([, v]) => v !== "")),
    }));
  } catch (e) {
    const line = (e as { lines?: number }).lines;
    throw new PickrankError(
      "BAD_INPUT",
      `${file}${line ? `:${line}` : ""}: expected CSV with a header (prompt,file,config): ${(e as Error).message}`,
      {
        cause: e,
        details: { file, ...(line ? { line } : {}) },
      },
    );
  }
}

/** Options of scoreImages. */
export interface ScoreImagesOptions {
  store: EvalStore;
  items: readonly ImageItem[];
  scorer: EvalScorer;
  judge?: EvalScorer;
  batchSize: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/** What scoreImages did: images asked, scored in total (earlier runs included), and the files it could not read. */
export interface ScoreImagesReport {
  asked: number;
  scored: number;
  failed: { item: ImageItem; error: PickrankError }[];
}

/**
 * Scores every item not yet scored in the store (a resumed run skips those), a batch at a time, and
 * stores each row with its scores as soon as its batch is scored. An unreadable image fails alone.
 * @throws ABORTED when the signal fires; the store's FILESYSTEM errors.
 */
export async function scoreImages(o: ScoreImagesOptions): Promise<ScoreImagesReport> {
  const done = await o.store.doneKeys({ withJudge: o.judge !== undefined });
  const todo = o.items.filter((i) => !done.has(candidateKey({ config: i.config, promptId: i.prompt.id, seedIndex: i.seedIndex })));
  const report: ScoreImagesReport = { asked: o.items.length, scored: o.items.length - todo.length, failed: [] };
  o.onProgress?.(report.scored, report.asked);
  const texts = new Map<string, Promise<[Float32Array, Float32Array | undefined]>>();
  const textOf = (t: string) => {
    let v = texts.get(t);
    if (!v) texts.set(t, (v = Promise.all([o.scorer.embedText(scoringPrompt(t)), o.judge?.embedText(scoringPrompt(t))])));
    return v;
  };
  for (let i = 0; i < todo.length; i += o.batchSize) {
    if (o.signal?.aborted) throw abortedError("eval images", o.signal.reason);
    const batch = todo.slice(i, i + o.batchSize);
    const results = await scoreBatch(o, batch, await Promise.all(batch.map((b) => textOf(b.prompt.text))));
    batch.forEach((item, n) => {
      const r = results[n]!;
      if (r === true) report.scored++;
      else report.failed.push({ item, error: r });
    });
    o.onProgress?.(report.scored + report.failed.length, report.asked);
  }
  return report;
}

/** A PickrankError for what went wrong with one image; FILESYSTEM (the store) and ABORTED are rethrown. */
function isolate(e: unknown, file: string): PickrankError {
  const err = toPickrankError(e, "BAD_IMAGE", `Could not score ${file}`);
  if (err.code === "FILESYSTEM" || err.code === "ABORTED") throw err;
  return err;
}

/** Embeddings of a batch in one call; when that fails, one call per image, so one bad file fails alone. */
async function embedSettled(model: EvalScorer, images: (Buffer | PickrankError)[], files: string[], signal?: AbortSignal) {
  const call = signal ? { signal } : {};
  const ok = images.filter((x): x is Buffer => Buffer.isBuffer(x));
  let all: Float32Array[] | undefined;
  try {
    if (ok.length === images.length) all = await model.embedImages(ok, call);
  } catch (e) {
    if (signal?.aborted) throw e;
  }
  const out: (Float32Array | PickrankError)[] = [];
  for (let i = 0; i < images.length; i++) {
    const img = images[i]!;
    if (!Buffer.isBuffer(img)) out.push(img);
    else if (all) out.push(all[i]!);
    else
      out.push(
        await model.embedImages([img], call).then(
          (r) => r[0]!,
          (e: unknown) => isolate(e, files[i]!),
        ),
      );
  }
  return out;
}

/** Reads, embeds (scorer, then judge) and stores a batch; per item, true or the error that failed it. */
async function scoreBatch(
  o: ScoreImagesOptions,
  batch: ImageItem[],
  texts: [Float32Array, Float32Array | undefined][],
): Promise<(true | PickrankError)[]> {
  const files = batch.map((b) => b.file);
  const bytes = await Promise.all(
    files.map((f) =>
      readFile(f).catch(
        (e: unknown) => new PickrankError("NOT_FOUND", `Could not read the image ${f}: ${(e as Error).message}`, { details: { path: f } }),
      ),
    ),
  );
  const sel = await embedSettled(o.scorer, bytes, files, o.signal);
  const jud = o.judge
    ? await embedSettled(
        o.judge,
        sel.map((s, i) => (s instanceof PickrankError ? s : bytes[i]!)),
        files,
        o.signal,
      )
    : undefined;
  const out: (true | PickrankError)[] = [];
  for (let i = 0; i < batch.length; i++) {
    const s = sel[i]!;
    const j = jud?.[i];
    if (s instanceof PickrankError) out.push(s);
    else if (j instanceof PickrankError) out.push(j);
    else {
      const [t, jt] = texts[i]!;
      const score = o.scorer.scoreEmbeddings(t, [s])[0]!.score;
      const judgeScore = o.judge && jt && j ? o.judge.scoreEmbeddings(jt, [j])[0]!.score : null;
      await storeImage(o.store, batch[i]!, score, judgeScore);
      out.push(true);
    }
  }
  return out;
}

async function storeImage(store: EvalStore, item: ImageItem, score: number, judgeScore: number | null): Promise<void> {
  const ext = path.extname(item.file).slice(1).toLowerCase();
  await store.insertCandidate({
    config: item.config,
    promptId: item.prompt.id,
    seedIndex: item.seedIndex,
    seed: null,
    image: item.file,
    format: ext === "jpg" ? "jpeg" : ext,
    backend: null,
    renderMs: null,
  });
  await store.setScores({ config: item.config, promptId: item.prompt.id, seedIndex: item.seedIndex }, { score, judgeScore });
}

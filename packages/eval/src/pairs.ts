/**
 * `eval pairs`: Pick-a-Pic-format human judgements, scored pair by pair. Read from the dataset's own
 * Parquet files (columns caption, jpg_0, jpg_1 as image bytes, label_0, label_1; ranking_id and
 * has_label used when present), through DuckDB's read_parquet, or from JSONL with one
 * `{"caption", "jpg_0", "jpg_1", "label_0", "label_1"}` object a line where jpg_0/jpg_1 are image files
 * relative to the JSONL file (optional "id" and "split"). Labels are (1, 0), (0, 1) or (0.5, 0.5) for a tie.
 */
import { open, readFile } from "node:fs/promises";
import path from "node:path";
import { PickrankError, abortedError, fsError, toPickrankError } from "@pickrank/contract";
import { scoringPrompt } from "@pickrank/selector";
import type { PairRow } from "./records.ts";
import type { EvalScorer } from "./run.ts";
import type { EvalStore } from "./store.ts";

/** A pairs file and the split its rows belong to (a JSONL row's own "split" wins). */
export interface PairsSource {
  file: string;
  split: PairRow["split"];
}

/** One pair read from a file: labels, caption and both images' bytes. */
export interface PairInput {
  id: string;
  caption: string;
  split: PairRow["split"];
  label0: number;
  label1: number;
  image0: Buffer;
  image1: Buffer;
}

/** Pick-a-Pic's label pairs: image 0 preferred, image 1 preferred, tie. */
function checkLabels(l0: unknown, l1: unknown, where: string): [number, number] {
  const a = Number(l0);
  const b = Number(l1);
  const ok = (a === 1 && b === 0) || (a === 0 && b === 1) || (a === 0.5 && b === 0.5);
  if (!ok)
    throw new PickrankError(
      "BAD_INPUT",
      `${where}: expected label_0, label_1 of (1, 0), (0, 1) or (0.5, 0.5) but received (${String(l0)}, ${String(l1)})`,
    );
  return [a, b];
}

/** A JSONL row's fields, checked: caption, image files (relative to the JSONL file), labels, split, id. */
interface JsonlRow {
  id: string;
  caption: string;
  jpg0: string;
  jpg1: string;
  label0: number;
  label1: number;
  split: PairRow["split"];
  /** `file:line`, for messages. */
  where: string;
}

/** Reads a pairs file's text. @throws NOT_FOUND / FILESYSTEM naming the file (and `option` when given). */
async function readPairsText(file: string, option?: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, { action: "read the pairs file", path: file, ...(option !== undefined ? { option } : {}) });
  }
}

/** The rows of a JSONL pairs file's text, checked (images not read). @throws BAD_INPUT naming the line. */
function* jsonlRows(text: string, src: PairsSource): Generator<JsonlRow> {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!.trim();
    if (l === "") continue;
    const where = `${src.file}:${i + 1}`;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(l) as Record<string, unknown>;
    } catch (e) {
      throw new PickrankError("BAD_INPUT", `${where}: expected one JSON object a line but it does not parse: ${(e as Error).message}`);
    }
    for (const k of ["caption", "jpg_0", "jpg_1"])
      if (typeof row[k] !== "string" || row[k] === "")
        throw new PickrankError(
          "BAD_INPUT",
          `${where}: expected a string for ${k} (the caption, or an image file relative to the JSONL file)`,
        );
    const [label0, label1] = checkLabels(row["label_0"], row["label_1"], where);
    const split = row["split"] === "validation" || row["split"] === "test" ? row["split"] : src.split;
    const id = typeof row["id"] === "string" || typeof row["id"] === "number" ? String(row["id"]) : `${path.basename(src.file)}:${i + 1}`;
    yield {
      id,
      caption: row["caption"] as string,
      jpg0: row["jpg_0"] as string,
      jpg1: row["jpg_1"] as string,
      label0,
      label1,
      split,
      where,
    };
  }
}

/**
 * Yields the pairs of a JSONL file, reading each row's two image files.
 * @throws NOT_FOUND for a missing file or image; BAD_INPUT naming the line of a malformed row.
 */
export async function* readJsonlPairs(src: PairsSource): AsyncGenerator<PairInput> {
  const base = path.dirname(path.resolve(src.file));
  for (const r of jsonlRows(await readPairsText(src.file), src)) {
    const img = async (rel: string, k: string): Promise<Buffer> => {
      const f = path.resolve(base, rel);
      try {
        return await readFile(f);
      } catch (e) {
        throw fsError(e, { action: `read ${k} of ${r.where}`, path: f });
      }
    };
    const { id, caption, split, label0, label1 } = r;
    yield { id, caption, split, label0, label1, image0: await img(r.jpg0, "jpg_0"), image1: await img(r.jpg1, "jpg_1") };
  }
}

/**
 * Checks pairs files before anything is stored: each file readable, a `.parquet` one starting with
 * Parquet's magic bytes, every JSONL row well-formed (its images are read when scored). `option` names
 * the flag of a validation file (`--validation`); test files are the command's arguments.
 * @returns whether any validation pair is given (a validation file, or a JSONL row with split "validation").
 * @throws NOT_FOUND / FILESYSTEM naming the file; BAD_INPUT for a file that is not Parquet or a malformed row.
 */
export async function checkPairsSources(sources: readonly PairsSource[]): Promise<{ validation: boolean }> {
  let validation = false;
  for (const src of sources) {
    const option = src.split === "validation" ? "--validation" : undefined;
    if (/\.parquet$/i.test(src.file)) {
      let head: Buffer;
      try {
        const fh = await open(src.file, "r");
        head = Buffer.alloc(4);
        await fh.read(head, 0, 4, 0).finally(() => fh.close());
      } catch (e) {
        throw fsError(e, { action: "read the pairs file", path: src.file, ...(option !== undefined ? { option } : {}) });
      }
      if (head.toString("latin1") !== "PAR1")
        throw new PickrankError(
          "BAD_INPUT",
          `Expected a Parquet file (Pick-a-Pic's own format) in ${src.file} but it does not start with PAR1`,
          {
            details: { file: src.file },
          },
        );
      validation ||= src.split === "validation";
      continue;
    }
    for (const r of jsonlRows(await readPairsText(src.file, option), src)) validation ||= r.split === "validation";
  }
  return { validation };
}

const PARQUET_COLUMNS = ["caption", "jpg_0", "jpg_1", "label_0", "label_1"];

/**
 * Yields the pairs of a Pick-a-Pic Parquet file (the dataset's own files), `chunk` rows per query.
 * Rows with has_label false (when the column exists) are skipped.
 * @throws NOT_FOUND for a missing file; BAD_INPUT when it is not Parquet or lacks a column.
 */
export async function* readParquetPairs(store: EvalStore, src: PairsSource, chunk = 64): AsyncGenerator<PairInput> {
  const lit = `'${path.resolve(src.file).replace(/'/g, "''")}'`;
  await readFile(src.file).catch((e) => {
    throw fsError(e, { action: "read the pairs file", path: src.file });
  });
  const cols = (await store.query(`select column_name from (describe select * from read_parquet(${lit}))`)).map((r) =>
    String(r["column_name"]),
  );
  const missing = PARQUET_COLUMNS.filter((c) => !cols.includes(c));
  if (missing.length > 0)
    throw new PickrankError(
      "BAD_INPUT",
      `Expected the Pick-a-Pic columns ${PARQUET_COLUMNS.join(", ")} in ${src.file} ` +
        `but ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing ` +
        `(found ${cols.join(", ")})`,
      { details: { file: src.file } },
    );
  const id = cols.includes("ranking_id") ? "cast(ranking_id as varchar)" : "null";
  const where = cols.includes("has_label") ? "where coalesce(has_label, true)" : "";
  for (let offset = 0; ; offset += chunk) {
    const rows = await store.query(
      `select ${id} as id, row_number() over () as rn, caption, jpg_0, jpg_1, cast(label_0 as double) as label_0, ` +
        `cast(label_1 as double) as label_1 from read_parquet(${lit}) ${where} limit ${chunk} offset ${offset}`,
    );
    if (rows.length === 0) return;
    for (const r of rows) {
      const rn = Number(r["rn"]);
      const at = `${src.file} row ${rn}`;
      const [label0, label1] = checkLabels(r["label_0"], r["label_1"], at);
      const bytes = (k: string): Buffer => {
        const v = r[k];
        if (!(v instanceof Uint8Array)) throw new PickrankError("BAD_INPUT", `${at}: expected image bytes in ${k} but found ${typeof v}`);
        return Buffer.from(v);
      };
      yield {
        id: typeof r["id"] === "string" ? r["id"] : `${path.basename(src.file)}:${rn}`,
        caption: String(r["caption"] ?? ""),
        split: src.split,
        label0,
        label1,
        image0: bytes("jpg_0"),
        image1: bytes("jpg_1"),
      };
    }
  }
}

/** Options of scorePairs. */
export interface ScorePairsOptions {
  store: EvalStore;
  sources: readonly PairsSource[];
  scorer: EvalScorer;
  signal?: AbortSignal;
  onProgress?: (done: number) => void;
}

/** What scorePairs did: pairs stored in total (earlier runs included), scored now, and the pairs that failed. */
export interface ScorePairsReport {
  stored: number;
  scored: number;
  failed: { id: string; error: PickrankError }[];
}

/**
 * Scores every pair not yet in the store (resume: stored ids are skipped without decoding) and
 * stores each one as soon as it is scored. A pair whose image cannot be decoded fails alone.
 * @throws ABORTED when the signal fires; the readers' NOT_FOUND / BAD_INPUT; the store's FILESYSTEM.
 */
export async function scorePairs(o: ScorePairsOptions): Promise<ScorePairsReport> {
  const have = await o.store.pairIds();
  const report: ScorePairsReport = { stored: have.size, scored: 0, failed: [] };
  const texts = new Map<string, Promise<Float32Array>>();
  for (const src of o.sources) {
    const reader = /\.parquet$/i.test(src.file) ? readParquetPairs(o.store, src) : readJsonlPairs(src);
    for await (const p of reader) {
      if (o.signal?.aborted) throw abortedError("eval pairs", o.signal.reason);
      if (have.has(p.id)) continue;
      have.add(p.id);
      const caption = scoringPrompt(p.caption);
      let t = texts.get(caption);
      if (!t) texts.set(caption, (t = o.scorer.embedText(caption)));
      try {
        const imgs = await o.scorer.embedImages([p.image0, p.image1], o.signal ? { signal: o.signal } : {});
        const [s0, s1] = o.scorer.scoreEmbeddings(await t, imgs);
        const row: PairRow = {
          id: p.id,
          caption: p.caption,
          split: p.split,
          label0: p.label0,
          label1: p.label1,
          score0: s0!.score,
          score1: s1!.score,
        };
        await o.store.insertPair(row);
        report.scored++;
        report.stored++;
      } catch (e) {
        const err = toPickrankError(e, "BAD_IMAGE");
        if (err.code === "FILESYSTEM" || err.code === "ABORTED" || o.signal?.aborted) throw err;
        report.failed.push({ id: p.id, error: err });
      }
      o.onProgress?.(report.stored + report.failed.length);
    }
  }
  return report;
}

/**
 * CLIP BPE tokenizer, a re-implementation of the Hugging Face *fast* CLIP tokenizer (the one the
 * PickScore reference uses), not of the slow Python one: no ftfy, no html unescaping.
 *
 * The pipeline, in the order the `tokenizers` library runs it:
 *  1. added tokens that are not normalized (`<|endoftext|>`) are cut out of the raw text, case-sensitively;
 *  2. every other piece is normalized: NFC, runs of Unicode White_Space → one space, lowercase
 *     (code point by code point, as Rust's `char::to_lowercase`: no final-sigma rule);
 *  3. normalized added tokens (`<|startoftext|>`) are cut out of the normalized pieces;
 *  4. the rest is split with the CLIP regex (whitespace dropped), then again with the GPT-2 regex of
 *     the ByteLevel pre-tokenizer (which only splits `<|endoftext|>`-like pieces that reach it, e.g.
 *     from `<|ENDOFTEXT|>`), each piece mapped byte → unicode (GPT-2 byte level), its last symbol
 *     gets `</w>`, and BPE merges run by rank;
 *  5. the content is truncated to 75 ids, wrapped in 49406 … 49407 and padded to 77 with 49407.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PickrankError, invalidParameter } from "@pickrank/contract";

export const CONTEXT_LENGTH = 77;
export const BOS_TOKEN = "<|startoftext|>";
export const EOS_TOKEN = "<|endoftext|>";
const END_OF_WORD = "</w>";

/** The copy of laion/CLIP-ViT-H-14-laion2B-s32B-b79K's tokenizer files shipped with this package. */
export function defaultTokenizerDir(): string {
  return fileURLToPath(new URL("../../assets/clip-tokenizer", import.meta.url));
}

// Unicode White_Space, written out: JS `\s` differs from it (adds U+FEFF, lacks U+0085), and the
// reference (Oniguruma `\s`) follows White_Space.
const WS = "\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_RUN = new RegExp(`[${WS}]+`, "gu");
// The pre-tokenizer pattern from the CLIP tokenizer.json, with `\s` spelled as above.
const CLIP_PATTERN = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WS}\\p{L}\\p{N}]+`,
  "gu",
);

// The ByteLevel pre-tokenizer's own split (use_regex defaults to true in the CLIP tokenizer.json).
const GPT2_PATTERN = new RegExp(`'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`, "gu");

/** GPT-2's reversible byte → printable character table. */
function bytesToUnicode(): string[] {
  const table: string[] = new Array(256);
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const isDirect = new Set(direct);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (isDirect.has(b)) table[b] = String.fromCharCode(b);
    else table[b] = String.fromCharCode(256 + n++);
  }
  return table;
}
const BYTE_CHARS = bytesToUnicode();
const utf8 = new TextEncoder();

function normalize(text: string): string {
  // Σ→σ first because String#toLowerCase applies the final-sigma rule and the reference does not.
  return text
    .normalize("NFC")
    .replace(WS_RUN, " ")
    .replace(/\u03a3/g, "\u03c3")
    .toLowerCase();
}

/** Splits `text` on every occurrence of `token`, keeping the token as its own piece. */
function splitOn(text: string, token: string): { text: string; special: boolean }[] {
  const out: { text: string; special: boolean }[] = [];
  let from = 0;
  for (;;) {
    const at = text.indexOf(token, from);
    if (at < 0) break;
    if (at > from) out.push({ text: text.slice(from, at), special: false });
    out.push({ text: token, special: true });
    from = at + token.length;
  }
  if (from < text.length) out.push({ text: text.slice(from), special: false });
  return out;
}

const BPE_CACHE_LIMIT = 50_000;

/**
 * CLIP BPE tokenizer, a port of the Hugging Face fast CLIP tokenizer the PickScore reference uses:
 * encode() gives `contextLength` (77) ids: 49406 (start), at most 75 content ids, 49407 (end), padded
 * with 49407. Load with ClipTokenizer.fromDir (NOT_FOUND, BAD_TOKENIZER).
 */
export class ClipTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly contextLength = CONTEXT_LENGTH;
  private readonly vocab: Map<string, number>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, number[]>();

  /** Prefer {@link ClipTokenizer.fromDir}; this takes an already parsed vocabulary and merge list. */
  constructor(vocab: Map<string, number>, merges: [string, string][], source = "tokenizer") {
    this.vocab = vocab;
    this.ranks = new Map();
    merges.forEach(([a, b], i) => {
      const key = `${a} ${b}`;
      if (!this.ranks.has(key)) this.ranks.set(key, i);
    });
    const bos = vocab.get(BOS_TOKEN);
    const eos = vocab.get(EOS_TOKEN);
    if (bos === undefined || eos === undefined) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected the special tokens ${BOS_TOKEN} and ${EOS_TOKEN} in the vocabulary of ${source} but ${bos === undefined ? BOS_TOKEN : EOS_TOKEN} is missing`,
        { details: { file: source } },
      );
    }
    for (const ch of BYTE_CHARS) {
      if (!vocab.has(ch) || !vocab.has(ch + END_OF_WORD)) {
        throw new PickrankError(
          "BAD_TOKENIZER",
          `Expected a byte-level CLIP vocabulary in ${source} (all 256 byte symbols, with and without ${END_OF_WORD}) but ${JSON.stringify(vocab.has(ch) ? ch + END_OF_WORD : ch)} is missing`,
          { details: { file: source } },
        );
      }
    }
    this.bosId = bos;
    this.eosId = eos;
    this.padId = eos;
  }

  /**
   * Loads `tokenizer.json` (HF fast tokenizer) when the folder has one, else `vocab.json` + `merges.txt`.
   * Throws NOT_FOUND when `dir` does not exist, BAD_TOKENIZER naming the file and what was expected otherwise.
   */
  static async fromDir(dir: string): Promise<ClipTokenizer> {
    if (typeof dir !== "string" || dir.length === 0) throw invalidParameter("dir", "a tokenizer folder path", dir);
    const st = await stat(dir).catch(() => undefined);
    const expected = "Expected a tokenizer folder with tokenizer.json or vocab.json + merges.txt";
    if (!st) throw new PickrankError("NOT_FOUND", `${expected} but ${dir} does not exist`, { details: { path: dir } });
    if (!st.isDirectory()) throw new PickrankError("BAD_TOKENIZER", `${expected} but ${dir} is not a folder`, { details: { dir } });
    const tokenizerJson = path.join(dir, "tokenizer.json");
    if (await isFile(tokenizerJson)) return ClipTokenizer.fromTokenizerJson(tokenizerJson);
    const vocabPath = path.join(dir, "vocab.json");
    const mergesPath = path.join(dir, "merges.txt");
    const [hasVocab, hasMerges] = await Promise.all([isFile(vocabPath), isFile(mergesPath)]);
    if (!hasVocab || !hasMerges) {
      const missing = [!hasVocab ? "vocab.json" : "", !hasMerges ? "merges.txt" : ""].filter(Boolean).join(" and ");
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected tokenizer.json, or vocab.json and merges.txt, in ${dir} but ${missing} ${missing.includes(" and ") ? "are" : "is"} missing`,
        { details: { dir, missing } },
      );
    }
    const [vocabText, mergesText] = await Promise.all([readText(vocabPath), readText(mergesPath)]);
    const vocab = parseVocab(parseJson(vocabText, vocabPath), vocabPath);
    const merges = parseMergesTxt(mergesText, mergesPath);
    return new ClipTokenizer(vocab, merges, vocabPath);
  }

  private static async fromTokenizerJson(file: string): Promise<ClipTokenizer> {
    const json = parseJson(await readText(file), file);
    const model = isRecord(json) ? json["model"] : undefined;
    if (!isRecord(model) || (model["type"] !== undefined && model["type"] !== "BPE")) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected a BPE model in ${file} (model.type "BPE" with vocab and merges) but found ${isRecord(model) ? `model.type ${JSON.stringify(model["type"])}` : "no model object"}`,
        { details: { file } },
      );
    }
    const suffix = model["end_of_word_suffix"];
    if (suffix !== undefined && suffix !== null && suffix !== END_OF_WORD) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected a CLIP tokenizer in ${file} (end_of_word_suffix "${END_OF_WORD}") but found ${JSON.stringify(suffix)}`,
        { details: { file } },
      );
    }
    const vocab = parseVocab(model["vocab"], `${file} (model.vocab)`);
    // Added tokens carry the special ids; they usually repeat the vocabulary, but they win if not.
    const added = isRecord(json) && Array.isArray(json["added_tokens"]) ? json["added_tokens"] : [];
    for (const t of added) {
      if (isRecord(t) && typeof t["content"] === "string" && Number.isInteger(t["id"])) vocab.set(t["content"], t["id"] as number);
    }
    const rawMerges = model["merges"];
    if (!Array.isArray(rawMerges)) {
      throw new PickrankError("BAD_TOKENIZER", `Expected model.merges to be an array in ${file} but received ${typeof rawMerges}`, {
        details: { file },
      });
    }
    const merges: [string, string][] = rawMerges.map((m, i) => {
      // tokenizers writes "a b" strings (≤0.19) or ["a", "b"] pairs (≥0.20).
      const pair = typeof m === "string" ? m.split(" ") : m;
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || typeof pair[1] !== "string") {
        throw new PickrankError(
          "BAD_TOKENIZER",
          `Expected model.merges[${i}] in ${file} to be "a b" or ["a", "b"] but received ${JSON.stringify(m)}`,
          { details: { file, index: i } },
        );
      }
      return [pair[0], pair[1]];
    });
    return new ClipTokenizer(vocab, merges, file);
  }

  /** Exactly 77 ids: 49406, up to 75 content ids, 49407, then 49407 padding. */
  encode(text: string): number[] {
    if (typeof text !== "string") throw invalidParameter("text", "a string", text);
    const content = this.contentIds(text, this.contextLength - 2);
    const ids = new Array<number>(this.contextLength).fill(this.padId);
    ids[0] = this.bosId;
    for (let i = 0; i < content.length; i++) ids[i + 1] = content[i] as number;
    ids[content.length + 1] = this.eosId;
    return ids;
  }

  /**
   * How many content ids `text` has before truncation (without the start and end ids): more than
   * `contextLength - 2` (75) means {@link encode} cuts the rest. Throws BAD_INPUT for a non-string.
   */
  countTokens(text: string): number {
    if (typeof text !== "string") throw invalidParameter("text", "a string", text);
    return this.contentIds(text, Infinity).length;
  }

  /** The content ids of `text`, stopping after `max`. */
  private contentIds(text: string, max: number): number[] {
    const content: number[] = [];
    outer: for (const raw of splitOn(text, EOS_TOKEN)) {
      if (raw.special) {
        content.push(this.eosId);
        if (content.length >= max) break;
        continue;
      }
      for (const piece of splitOn(normalize(raw.text), BOS_TOKEN)) {
        if (piece.special) {
          content.push(this.bosId);
          if (content.length >= max) break outer;
          continue;
        }
        for (const m of piece.text.matchAll(CLIP_PATTERN)) {
          for (const id of this.bpe(m[0])) {
            content.push(id);
            if (content.length >= max) break outer;
          }
        }
      }
    }
    return content;
  }

  encodeBatch(texts: string[]): number[][] {
    if (!Array.isArray(texts)) throw invalidParameter("texts", "an array of strings", texts);
    return texts.map((t, i) => {
      if (typeof t !== "string") throw invalidParameter(`texts[${i}]`, "a string", t);
      return this.encode(t);
    });
  }

  /** Ids of one CLIP pre-token, memoized (prompts repeat the same words). */
  private bpe(piece: string): number[] {
    const hit = this.cache.get(piece);
    if (hit) return hit;
    let ids: number[] = [];
    for (const m of piece.matchAll(GPT2_PATTERN)) ids = ids.concat(this.bpeWord(m[0]));
    if (this.cache.size >= BPE_CACHE_LIMIT) this.cache.clear();
    this.cache.set(piece, ids);
    return ids;
  }

  /** BPE of one word: byte symbols, `</w>` on the last, merges by rank. */
  private bpeWord(word: string): number[] {
    const bytes = utf8.encode(word);
    let symbols: string[] = new Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) symbols[i] = BYTE_CHARS[bytes[i] as number] as string;
    symbols[symbols.length - 1] += END_OF_WORD;
    while (symbols.length > 1) {
      // Lowest-rank pair first; merging all its occurrences left to right equals tokenizers' heap
      // order for merge lists learned by BPE (a merged pair always ranks after its parts).
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < symbols.length - 1; i++) {
        const r = this.ranks.get(`${symbols[i]} ${symbols[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const a = symbols[best] as string;
      const b = symbols[best + 1] as string;
      const merged: string[] = [];
      for (let i = 0; i < symbols.length; ) {
        if (i < symbols.length - 1 && symbols[i] === a && symbols[i + 1] === b) {
          merged.push(a + b);
          i += 2;
        } else {
          merged.push(symbols[i] as string);
          i += 1;
        }
      }
      symbols = merged;
    }
    // fuse_unk is false and every byte symbol is in the vocabulary, so unknowns cannot occur; keep a
    // fallback to the unk token (= end of text) as the reference does.
    return symbols.map((s) => this.vocab.get(s) ?? this.eosId);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function isFile(p: string): Promise<boolean> {
  const st = await stat(p).catch(() => undefined);
  return st?.isFile() ?? false;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    throw new PickrankError("BAD_TOKENIZER", `Expected a readable file at ${file} but reading it failed: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new PickrankError("BAD_TOKENIZER", `Expected valid JSON in ${file} but parsing failed: ${(e as Error).message}`, {
      cause: e,
      details: { file },
    });
  }
}

function parseVocab(v: unknown, file: string): Map<string, number> {
  if (!isRecord(v)) {
    throw new PickrankError(
      "BAD_TOKENIZER",
      `Expected an object of token → id in ${file} but received ${Array.isArray(v) ? "an array" : typeof v}`,
      {
        details: { file },
      },
    );
  }
  const vocab = new Map<string, number>();
  for (const [token, id] of Object.entries(v)) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected a non-negative integer id for token ${JSON.stringify(token)} in ${file} but received ${JSON.stringify(id)}`,
        { details: { file, token } },
      );
    }
    vocab.set(token, id);
  }
  return vocab;
}

function parseMergesTxt(text: string, file: string): [string, string][] {
  const merges: [string, string][] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    // The first line is a "#version: …" header; blank lines (the trailing one) carry nothing.
    if (line === "" || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(" ");
    if (parts.length !== 2 || !parts[0] || !parts[1]) {
      throw new PickrankError(
        "BAD_TOKENIZER",
        `Expected "<a> <b>" on line ${i + 1} of ${file} but received ${JSON.stringify(line.slice(0, 60))}`,
        { details: { file, line: i + 1 } },
      );
    }
    merges.push([parts[0], parts[1]]);
  }
  if (merges.length === 0) {
    throw new PickrankError("BAD_TOKENIZER", `Expected BPE merges ("<a> <b>" per line) in ${file} but found none`, { details: { file } });
  }
  return merges;
}

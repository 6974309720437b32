/**
 * Prompt sets for `pickrank eval`: the parsers of PartiPrompts' TSV, the HPSv2 benchmark's JSON and
 * plain text files, and the sets shipped with the package (`parti`, `hpsv2`; data/README.md says where
 * each file comes from and its licence). Parse errors are BAD_INPUT naming the file and the line.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PickrankError, fsError } from "@pickrank/contract";
import type { EvalPrompt } from "./records.ts";

/** The shipped data folder (data/ beside src/ and dist/). */
export const DATA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "data");

/** The HPSv2 benchmark's four styles, in its order. */
export const HPSV2_STYLES = ["anime", "concept-art", "paintings", "photo"] as const;

/** Built-in prompt sets: name → file in DATA_DIR and its format. */
export const BUILTIN_PROMPT_SETS = {
  parti: { file: "partiprompts.tsv", format: "parti-tsv", about: "PartiPrompts (P2): 1,632 prompts, 12 categories, 11 challenges" },
  hpsv2: { file: "hpsv2-benchmark-prompts.json", format: "hpsv2-json", about: "HPSv2 benchmark: 3,200 prompts, 800 per style" },
} as const;

/** A built-in set's name. */
export type BuiltinPromptSet = keyof typeof BUILTIN_PROMPT_SETS;

/** A loaded prompt set: its name (built-in name or file path) and its prompts, in file order. */
export interface PromptSet {
  name: string;
  prompts: EvalPrompt[];
}

function bad(file: string, line: number | undefined, what: string, option?: string): PickrankError {
  return new PickrankError("BAD_INPUT", `${file}${line !== undefined ? `:${line}` : ""}: ${what}`, {
    details: { file, ...(line !== undefined ? { line } : {}), ...(option ? { parameter: option } : {}) },
  });
}

/**
 * Parses PartiPrompts' TSV: a header with Prompt and Category (Challenge, Note optional), then one
 * prompt per line, tab-separated, no quoting (quotes are part of the prompt). Ids are `<prefix>-NNNN`,
 * the 1-based row number after the header.
 * @throws BAD_INPUT naming the file and line: a missing column, an empty prompt, a wrong number of fields.
 */
export function parsePartiTsv(text: string, file: string, prefix = "parti"): EvalPrompt[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = (lines[0] ?? "").split("\t").map((h) => h.trim());
  const col = (name: string) => header.findIndex((h) => h.toLowerCase() === name.toLowerCase());
  const [iPrompt, iCategory, iChallenge] = [col("Prompt"), col("Category"), col("Challenge")];
  if (iPrompt < 0 || iCategory < 0)
    throw bad(
      file,
      1,
      `expected a header with the columns Prompt and Category (tab-separated) but found ${JSON.stringify(lines[0] ?? "")}`,
    );
  const out: EvalPrompt[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const f = line.split("\t");
    if (f.length > header.length) throw bad(file, i + 1, `expected ${header.length} tab-separated fields but found ${f.length}`);
    const text = (f[iPrompt] ?? "").trim();
    if (text === "") throw bad(file, i + 1, "expected a prompt in the Prompt column but it is empty");
    const p: EvalPrompt = { id: `${prefix}-${String(out.length + 1).padStart(4, "0")}`, text };
    const category = f[iCategory]?.trim();
    const challenge = iChallenge >= 0 ? f[iChallenge]?.trim() : undefined;
    if (category) p.category = category;
    if (challenge) p.challenge = challenge;
    out.push(p);
  }
  if (out.length === 0) throw bad(file, undefined, "expected at least one prompt after the header but found none");
  return out;
}

/**
 * Parses the HPSv2 benchmark prompts: a JSON object from style to an array of prompt strings (the
 * four styles anime, concept-art, paintings, photo; other keys are read the same way). The category
 * is the style; ids are `<prefix>-<style>-NNNN`, the 0-based index (the benchmark's image file index).
 * @throws BAD_INPUT naming the file (and the line of a JSON syntax error when Node reports it).
 */
export function parseHpsv2Json(text: string, file: string, prefix = "hpsv2"): EvalPrompt[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const pos = /position (\d+)/.exec((e as Error).message);
    const line = pos ? text.slice(0, Number(pos[1])).split("\n").length : undefined;
    throw bad(file, line, `expected JSON ({"anime": [prompts…], …}) but it does not parse: ${(e as Error).message}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data))
    throw bad(file, undefined, 'expected a JSON object from style to prompts ({"anime": [...], "photo": [...]}) but found another value');
  const out: EvalPrompt[] = [];
  for (const [style, list] of Object.entries(data)) {
    if (!Array.isArray(list) || list.some((x) => typeof x !== "string"))
      throw bad(file, undefined, `expected an array of prompt strings for the style ${JSON.stringify(style)}`);
    list.forEach((t: string, i) => {
      out.push({ id: `${prefix}-${style}-${String(i).padStart(4, "0")}`, text: t.trim(), category: style });
    });
  }
  const empty = out.find((p) => p.text === "");
  if (empty) throw bad(file, undefined, `expected a prompt for ${empty.id} but it is empty`);
  if (out.length === 0) throw bad(file, undefined, "expected at least one prompt but found none");
  return out;
}

/**
 * Parses a plain prompt file: one prompt per line, blank lines and lines starting with # skipped.
 * Ids are `line-N`, N the 1-based line number in the file (stable when lines are appended).
 * @throws BAD_INPUT when the file holds no prompt.
 */
export function parsePromptLines(text: string, file: string): EvalPrompt[] {
  const out: EvalPrompt[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((l, i) => {
      const t = l.trim();
      if (t !== "" && !t.startsWith("#")) out.push({ id: `line-${i + 1}`, text: t });
    });
  if (out.length === 0) throw bad(file, undefined, "expected at least one prompt (one per line, # for comments) but found none");
  return out;
}

/** Options of loadPromptSet: a subset by category (case-insensitive) and then the first `limit` prompts. */
export interface PromptSetOptions {
  /** Keep only prompts whose category (PartiPrompts' Category, HPSv2's style) is one of these. */
  categories?: readonly string[];
  /** Keep the first `limit` prompts (after the category filter). */
  limit?: number;
  /** How messages name the option that gave the set (default "--prompts"). */
  option?: string;
}

/**
 * Loads a built-in set by name (`parti`, `hpsv2`) or a file: `.tsv` as PartiPrompts, `.json` as the
 * HPSv2 benchmark's format, anything else one prompt per line; then applies `categories` and `limit`.
 * @throws NOT_FOUND for a file that does not exist; BAD_INPUT for a file that does not parse, or a
 *   category filter that leaves nothing (the message lists the set's categories).
 */
export async function loadPromptSet(nameOrFile: string, o: PromptSetOptions = {}): Promise<PromptSet> {
  const option = o.option ?? "--prompts";
  const builtin = (BUILTIN_PROMPT_SETS as Record<string, (typeof BUILTIN_PROMPT_SETS)[BuiltinPromptSet]>)[nameOrFile];
  const file = builtin ? path.join(DATA_DIR, builtin.file) : nameOrFile;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw fsError(e, {
      action: "read the prompt set",
      path: file,
      option,
      expected: `a built-in set (${Object.keys(BUILTIN_PROMPT_SETS).join(", ")}) or a .tsv, .json or text file`,
    });
  }
  const format = builtin?.format ?? (/\.tsv$/i.test(file) ? "parti-tsv" : /\.json$/i.test(file) ? "hpsv2-json" : "lines");
  let prompts =
    format === "parti-tsv"
      ? parsePartiTsv(text, file)
      : format === "hpsv2-json"
        ? parseHpsv2Json(text, file)
        : parsePromptLines(text, file);
  if (o.categories && o.categories.length > 0) {
    const want = new Set(o.categories.map((c) => c.trim().toLowerCase()));
    const all = [...new Set(prompts.map((p) => p.category).filter((c): c is string => c !== undefined))];
    prompts = prompts.filter((p) => p.category !== undefined && want.has(p.category.toLowerCase()));
    if (prompts.length === 0)
      throw new PickrankError(
        "BAD_INPUT",
        `Expected --categories from ${all.length > 0 ? all.join(", ") : "(this set has no categories)"} ` +
          `but received ${[...want].join(", ")}, which match no prompt of ${nameOrFile}`,
        { details: { parameter: "--categories", expected: all.join(", ") } },
      );
  }
  if (o.limit !== undefined) prompts = prompts.slice(0, o.limit);
  return { name: nameOrFile, prompts };
}

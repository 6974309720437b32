/**
 * Prompt sets: the shipped PartiPrompts and HPSv2 files read back whole, and the parsers' errors
 * naming the file and line of what is wrong.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { loadPromptSet, parseHpsv2Json, parsePartiTsv, parsePromptLines } from "../src/prompt-sets.ts";

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-prompt-sets-"));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

function thrown(fn: () => unknown): PickrankError {
  try {
    fn();
  } catch (e) {
    return e as PickrankError;
  }
  throw new Error("expected a throw");
}

describe("shipped prompt sets", () => {
  it("parti: 1,632 prompts with their 12 categories, quotes kept as written", async () => {
    const set = await loadPromptSet("parti");
    expect(set.prompts).toHaveLength(1632);
    expect(set.prompts[0]).toEqual({ id: "parti-0001", text: "bond", category: "Abstract", challenge: "Basic" });
    expect(set.prompts[1631]!.id).toBe("parti-1632");
    const cats = new Map<string, number>();
    for (const p of set.prompts) cats.set(p.category!, (cats.get(p.category!) ?? 0) + 1);
    expect(cats.size).toBe(12);
    expect(cats.get("Animals")).toBe(314);
    expect(set.prompts.some((p) => p.text.startsWith('"G I G G L E" painted'))).toBe(true);
  });

  it("hpsv2: 800 prompts per style, ids by index within the style", async () => {
    const set = await loadPromptSet("hpsv2");
    expect(set.prompts).toHaveLength(3200);
    expect(set.prompts[0]).toEqual({
      id: "hpsv2-anime-0000",
      text: "Spongebob depicted in the style of Dragon Ball Z.",
      category: "anime",
    });
    expect(set.prompts.filter((p) => p.category === "photo")).toHaveLength(800);
  });

  it("--categories (case-insensitive) then --limit", async () => {
    const set = await loadPromptSet("parti", { categories: ["vehicles", "Food & Beverage"], limit: 120 });
    expect(set.prompts).toHaveLength(120);
    expect(new Set(set.prompts.map((p) => p.category))).toEqual(new Set(["Vehicles", "Food & Beverage"]));
  });

  it("EXPECTED FAILURE - a category no prompt has: BAD_INPUT listing the set's categories", async () => {
    const e = await loadPromptSet("hpsv2", { categories: ["cartoon"] }).catch((x: PickrankError) => x);
    expect(e).toBeInstanceOf(PickrankError);
    expect((e as PickrankError).code).toBe("BAD_INPUT");
    expect((e as PickrankError).message).toMatch(/anime, concept-art, paintings, photo/);
  });

  it("EXPECTED FAILURE - a missing file: NOT_FOUND naming --prompts", async () => {
    const e = (await loadPromptSet(path.join(tmp, "nope.txt")).catch((x) => x)) as PickrankError;
    expect(e.code).toBe("NOT_FOUND");
    expect(e.message).toMatch(/--prompts/);
  });
});

describe("parsers", () => {
  it("plain text: ids by line number, comments and blank lines skipped", async () => {
    const f = path.join(tmp, "p.txt");
    await writeFile(f, "# header\na cat\n\n  a dog  \n");
    const set = await loadPromptSet(f);
    expect(set.prompts).toEqual([
      { id: "line-2", text: "a cat" },
      { id: "line-4", text: "a dog" },
    ]);
  });

  it("EXPECTED FAILURE - parsePartiTsv: too many fields names the line", () => {
    const e = thrown(() => parsePartiTsv("Prompt\tCategory\na\tB\nx\ty\tz\n", "p.tsv"));
    expect(e.code).toBe("BAD_INPUT");
    expect(e.message).toBe("p.tsv:3: expected 2 tab-separated fields but found 3");
    expect(e.details).toMatchObject({ file: "p.tsv", line: 3 });
  });

  it("EXPECTED FAILURE - parsePartiTsv: no Prompt column, an empty prompt", () => {
    expect(thrown(() => parsePartiTsv("Text\tCategory\n", "a.tsv")).message).toMatch(
      /^a\.tsv:1: expected a header with the columns Prompt/,
    );
    expect(thrown(() => parsePartiTsv("Prompt\tCategory\n\tAnimals\n", "b.tsv")).message).toBe(
      "b.tsv:2: expected a prompt in the Prompt column but it is empty",
    );
  });

  it("EXPECTED FAILURE - parseHpsv2Json: a syntax error (with its line where Node gives a position), a non-string prompt names the style", () => {
    const e = thrown(() => parseHpsv2Json('{\n"anime": [\n"a",\n]\n}', "h.json"));
    expect(e.code).toBe("BAD_INPUT");
    expect(e.message).toMatch(/^h\.json(:\d+)?: expected JSON .* but it does not parse/);
    expect(thrown(() => parseHpsv2Json('{"photo": ["a", 3]}', "h.json")).message).toMatch(/array of prompt strings for the style "photo"/);
  });

  it("EXPECTED FAILURE - parsePromptLines: only comments", () => {
    expect(thrown(() => parsePromptLines("# a\n\n", "t.txt")).code).toBe("BAD_INPUT");
  });
});

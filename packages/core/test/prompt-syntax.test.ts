/**
 * The scoring prompt: A1111 / ComfyUI / dynamic-prompts syntax removed from real prompts (the table
 * in data/prompt-syntax-cases.json), and the choice and length check around it.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { CLIP_CONTENT_TOKENS, ClipTokenizer, defaultTokenizerDir, resolveScorePrompt, scoringPrompt } from "@pickrank/core";

const here = path.dirname(fileURLToPath(import.meta.url));
const table = JSON.parse(readFileSync(path.join(here, "data", "prompt-syntax-cases.json"), "utf8")) as {
  cases: { name: string; prompt: string; score: string }[];
};

describe("scoringPrompt on real prompts", () => {
  it("the table has cases", () => expect(table.cases.length).toBeGreaterThanOrEqual(25));
  for (const c of table.cases) {
    it(c.name, () => expect(scoringPrompt(c.prompt)).toBe(c.score));
  }
  it("is idempotent on its own output", () => {
    for (const c of table.cases) {
      // Escaped brackets come out as literal brackets, which would parse again: skip those.
      if (/\\[()[\]\\]/.test(c.prompt)) continue;
      expect(scoringPrompt(c.score), c.name).toBe(c.score);
    }
  });
});

describe("resolveScorePrompt", () => {
  it("cleans by default, takes the user's text or the raw prompt when asked", () => {
    const prompt = "(masterpiece:1.2), a fox <lora:fox:0.7>";
    expect(resolveScorePrompt({ prompt })).toMatchObject({ text: "masterpiece, a fox", source: "cleaned", warnings: [] });
    expect(resolveScorePrompt({ prompt, raw: true })).toMatchObject({ text: prompt, source: "raw", warnings: [] });
    expect(resolveScorePrompt({ prompt, scorePrompt: "a red fox" })).toMatchObject({ text: "a red fox", source: "given" });
  });

  it("scores the raw prompt, saying so, when nothing but syntax is left", () => {
    const r = resolveScorePrompt({ prompt: "<lora:x:1>, BREAK" });
    expect(r.text).toBe("<lora:x:1>, BREAK");
    expect(r.source).toBe("raw");
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toMatch(/nothing but weights and tags.*--score-prompt/);
  });

  it("BAD CALL - resolveScorePrompt with both raw and a scoring prompt, or an empty one", () => {
    expect(() => resolveScorePrompt({ prompt: "a", raw: true, scorePrompt: "b" })).toThrow(PickrankError);
    expect(() => resolveScorePrompt({ prompt: "a", raw: true, scorePrompt: "b" })).toThrow(
      /either .*--score-prompt.* or --score-raw-prompt/,
    );
    expect(() => resolveScorePrompt({ prompt: "a", scorePrompt: "  " })).toThrow(/Expected a non-empty text for --score-prompt/);
  });

  it("counts CLIP tokens with the real tokenizer and says how many are cut, from which word on", async () => {
    const tok = await ClipTokenizer.fromDir(defaultTokenizerDir());
    const count = (t: string) => tok.countTokens(t);
    // 80 words of one token each ("cat" is one CLIP token): 5 past the 75 CLIP reads.
    const words = Array.from({ length: 80 }, (_, i) => (i === 75 ? "zebra" : "cat"));
    const long = words.join(" ");
    expect(count(long)).toBe(80);
    // What encode keeps is exactly the first 75 of those ids.
    const ids = tok.encode(long);
    expect(ids.filter((id) => id !== tok.padId && id !== tok.bosId)).toHaveLength(CLIP_CONTENT_TOKENS);
    const r = resolveScorePrompt({ prompt: long, countTokens: count });
    expect(r.tokens).toBe(80);
    expect(r.warnings).toHaveLength(1);
    expect(r.warnings[0]).toContain("is 80 CLIP tokens but PickScore reads 75");
    expect(r.warnings[0]).toContain('5 are cut, from "zebra cat cat cat cat" on');
    // Exactly 75 fits: no warning.
    expect(resolveScorePrompt({ prompt: words.slice(0, 75).join(" "), countTokens: count }).warnings).toEqual([]);
    // The weights a cleaned prompt no longer carries are tokens it no longer spends.
    const weighted = Array.from({ length: 30 }, (_, i) => `(cat${i}:1.2)`).join(", ");
    expect(count(weighted)).toBeGreaterThan(count(scoringPrompt(weighted)));
  });
});

import { mkdtemp, readFile, rm, writeFile, copyFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { ClipTokenizer, defaultTokenizerDir } from "../src/tokenizer/clip-tokenizer.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const shared = path.resolve(repoRoot, "../shared");
const fixtureFile = path.join(shared, "fixtures/pickscore-reference/tokenizer.json");
const sharedTokenizerDir = path.join(shared, "data/clip-tokenizer");

interface Case {
  text: string;
  ids: number[];
}
let cases: Case[] = [];
let shipped: ClipTokenizer;
let fromTokenizerJson: ClipTokenizer;

beforeAll(async () => {
  cases = (JSON.parse(await readFile(fixtureFile, "utf8")) as { cases: Case[] }).cases;
  shipped = await ClipTokenizer.fromDir(defaultTokenizerDir());
  // The shared folder has tokenizer.json too, so this exercises the other loader.
  fromTokenizerJson = await ClipTokenizer.fromDir(sharedTokenizerDir);
});

describe("defaultTokenizerDir", () => {
  it("points at the copy shipped inside packages/core (never ../shared)", async () => {
    const dir = defaultTokenizerDir();
    expect(dir).toBe(path.join(repoRoot, "packages/core/assets/clip-tokenizer"));
    for (const f of ["vocab.json", "merges.txt", "tokenizer_config.json"]) {
      expect(await readFile(path.join(dir, f), "utf8")).toBe(await readFile(path.join(sharedTokenizerDir, f), "utf8"));
    }
  });
});

describe("ClipTokenizer matches the reference (HF fast CLIP tokenizer) ids exactly", () => {
  it("has all 22 fixture cases", () => {
    expect(cases.length).toBe(22);
  });
  for (const loader of ["vocab.json + merges.txt (shipped)", "tokenizer.json"] as const) {
    it(`every fixture case via ${loader}`, () => {
      const tok = loader === "tokenizer.json" ? fromTokenizerJson : shipped;
      for (const c of cases) expect(tok.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
    });
  }
  it("encodeBatch equals encode per text", () => {
    expect(shipped.encodeBatch(cases.map((c) => c.text))).toEqual(cases.map((c) => c.ids));
  });
});

describe("ClipTokenizer matches the HF tokenizers library on cases the fixture lacks", () => {
  // test/data/tokenizer-extra.json: ids from the Rust `tokenizers` library (the fast tokenizer's engine)
  // on the shared tokenizer.json, made by test/data/gen-tokenizer-extra.py, which first checks that the
  // library reproduces all 22 reference cases. A1111 syntax, emoji, scripts, marks, odd whitespace,
  // upper-case special-token look-alikes, very long prompts.
  it("every extra case, both loaders", async () => {
    const extra = JSON.parse(
      await readFile(path.join(path.dirname(fileURLToPath(import.meta.url)), "data/tokenizer-extra.json"), "utf8"),
    ) as {
      cases: Case[];
    };
    expect(extra.cases.length).toBeGreaterThanOrEqual(30);
    for (const c of extra.cases) {
      expect(shipped.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
      expect(fromTokenizerJson.encode(c.text), JSON.stringify(c.text)).toEqual(c.ids);
    }
  });
});

describe("ClipTokenizer invariants on inputs without reference ids", () => {
  // Some of these have no reference ids (lone surrogates cannot be passed to the Python library), so
  // they are checked for the contract: 77 ids, bos first, one eos closing the content, padding after it.
  const texts = [
    "masterpiece, best quality, (photorealistic:1.4), [cinematic lighting], <lora:detail:0.8>",
    "((a cat)), [a|b], {red|blue} hair, (word:1.3) AND (dog:0.5) BREAK sky",
    "emoji 👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🫠",
    "东京塔的夜景，霓虹灯闪烁",
    "مدينة في الليل مع أضواء النيون",
    "e\u0301 a\u0308 combining marks n\u0303o\u0300\u0301\u0302 \u0301 lone",
    "ΟΔΟΣ ΣΟΦΟΣ final sigma",
    "İstanbul ß ﬁ Å",
    "zero\u200bwidth\ufeffbom\u0085nel",
    "x".repeat(5000),
    Array.from({ length: 2000 }, (_, i) => `w${i}`).join(" "),
    "<|ENDOFTEXT|> <|StartOfText|> <|endoftext|><|endoftext|>",
    "\ud800 lone surrogate \udc00",
    "\u0000\u0001 control \u007f",
  ];
  for (const text of texts) {
    it(`contract holds for ${JSON.stringify(text.slice(0, 40))}`, () => {
      const ids = shipped.encode(text);
      expect(ids).toHaveLength(77);
      expect(ids[0]).toBe(49406);
      expect(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 49408)).toBe(true);
      // The content ends at the first 49407 that is followed only by padding.
      let end = 76;
      while (end > 1 && ids[end - 1] === 49407) end--;
      expect(ids[end]).toBe(49407);
      expect(ids.slice(end).every((id) => id === 49407)).toBe(true);
      expect(shipped.encode(text)).toEqual(ids); // deterministic (second call goes through the BPE cache)
      expect(fromTokenizerJson.encode(text)).toEqual(ids); // both loaders agree
    });
  }

  it("long prompts are truncated to 75 content ids with eos kept at position 76", () => {
    const ids = shipped.encode("a photo of a cat ".repeat(100));
    expect(ids[76]).toBe(49407);
    expect(ids.slice(1, 76)).not.toContain(49407);
  });

  it("A1111 weight syntax is tokenized as plain text (parentheses, colon and weight kept)", () => {
    const plain = shipped.encode("word");
    const weighted = shipped.encode("(word:1.3)");
    expect(weighted.slice(1, 8)).toContain(plain[1]);
    expect(weighted.filter((id) => id !== 49407).length).toBeGreaterThan(plain.filter((id) => id !== 49407).length + 3);
  });

  it("case, NFC form and whitespace runs do not change the ids", () => {
    expect(shipped.encode("Caf\u00e9  AU\tLait")).toEqual(shipped.encode("cafe\u0301 au lait"));
  });

  it("a literal <|endoftext|> in the text becomes 49407 and <|startoftext|> becomes 49406", () => {
    const ids = shipped.encode("a<|endoftext|>b<|startoftext|>c");
    const one = (t: string): number | undefined => shipped.encode(t)[1];
    expect(ids.slice(0, 8)).toEqual([49406, one("a"), 49407, one("b"), 49406, one("c"), 49407, 49407]);
  });
});

describe("ClipTokenizer.encode bad input", () => {
  it("encode rejects a non-string with BAD_INPUT", () => {
    expect(() => shipped.encode(42 as unknown as string)).toThrow(PickrankError);
    try {
      shipped.encode(undefined as unknown as string);
    } catch (e) {
      expect((e as PickrankError).code).toBe("BAD_INPUT");
      expect((e as PickrankError).message).toMatch(/Expected a string for text but received undefined/);
    }
  });
  it("encodeBatch rejects a non-array and non-string items", () => {
    expect(() => shipped.encodeBatch("x" as unknown as string[])).toThrow(/Expected an array of strings for texts/);
    expect(() => shipped.encodeBatch(["ok", 3 as unknown as string])).toThrow(/texts\[1\]/);
  });
});

describe("ClipTokenizer.fromDir bad tokenizer folders", () => {
  let tmp = "";
  beforeAll(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-tok-"));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  async function expectBad(dir: string, pattern: RegExp): Promise<void> {
    const err = await ClipTokenizer.fromDir(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PickrankError);
    expect((err as PickrankError).code).toBe("BAD_TOKENIZER");
    expect((err as PickrankError).message).toMatch(pattern);
  }
  async function dirWith(name: string, files: Record<string, string>): Promise<string> {
    const d = path.join(tmp, name);
    await mkdir(d, { recursive: true });
    for (const [f, body] of Object.entries(files)) await writeFile(path.join(d, f), body);
    return d;
  }

  it("fromDir: missing folder → NOT_FOUND (a missing input), not BAD_TOKENIZER", async () => {
    const missing = path.join(tmp, "nope");
    await expect(ClipTokenizer.fromDir(missing)).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringMatching(/nope does not exist/),
      details: { path: missing },
    });
  });
  it("fromDir: a file instead of a folder", async () => {
    const f = path.join(tmp, "file.txt");
    await writeFile(f, "x");
    await expectBad(f, /is not a folder/);
  });
  it("fromDir: empty folder names both expected files", async () => {
    await expectBad(await dirWith("empty", {}), /vocab\.json and merges\.txt are missing/);
  });
  it("fromDir: merges.txt missing", async () => {
    await expectBad(await dirWith("nomerges", { "vocab.json": "{}" }), /merges\.txt is missing/);
  });
  it("fromDir: vocab.json not JSON", async () => {
    await expectBad(await dirWith("badjson", { "vocab.json": "{nope", "merges.txt": "a b\n" }), /Expected valid JSON in .*vocab\.json/);
  });
  it("fromDir: vocab.json of the wrong shape", async () => {
    await expectBad(
      await dirWith("arr", { "vocab.json": "[1,2]", "merges.txt": "a b\n" }),
      /token → id in .*vocab\.json but received an array/,
    );
    await expectBad(await dirWith("strid", { "vocab.json": '{"a":"1"}', "merges.txt": "a b\n" }), /integer id for token "a"/);
  });
  it("fromDir: vocabulary without the special tokens", async () => {
    await expectBad(await dirWith("nospecial", { "vocab.json": '{"a":0}', "merges.txt": "#version: 0.2\na b\n" }), /<\|startoftext\|>/);
  });
  it("fromDir: malformed merges line names the line", async () => {
    const vocab = await readFile(path.join(defaultTokenizerDir(), "vocab.json"), "utf8");
    await expectBad(
      await dirWith("badmerge", { "vocab.json": vocab, "merges.txt": "#version: 0.2\ni n\nthree parts here\n" }),
      /line 3 of .*merges\.txt/,
    );
  });
  it("fromDir: tokenizer.json that is not BPE", async () => {
    await expectBad(
      await dirWith("wordpiece", { "tokenizer.json": JSON.stringify({ model: { type: "WordPiece", vocab: {} } }) }),
      /Expected a BPE model in .*tokenizer\.json/,
    );
  });
  it("fromDir: tokenizer.json with malformed merges", async () => {
    await expectBad(
      await dirWith("tjmerges", { "tokenizer.json": JSON.stringify({ model: { type: "BPE", vocab: { a: 0 }, merges: [["a"]] } }) }),
      /model\.merges\[0\]/,
    );
  });
  it("fromDir: a vocabulary that is not byte-level", async () => {
    await expectBad(
      await dirWith("notbytes", { "vocab.json": JSON.stringify({ "<|startoftext|>": 0, "<|endoftext|>": 1 }), "merges.txt": "a b\n" }),
      /byte-level CLIP vocabulary/,
    );
  });
  it("fromDir: works on a copy holding only vocab.json + merges.txt", async () => {
    const d = path.join(tmp, "copy");
    await mkdir(d);
    for (const f of ["vocab.json", "merges.txt"]) await copyFile(path.join(defaultTokenizerDir(), f), path.join(d, f));
    const tok = await ClipTokenizer.fromDir(d);
    expect(tok.encode("a photo of a cat").slice(0, 8)).toEqual([49406, 320, 1125, 539, 320, 2368, 49407, 49407]);
  });
});

/**
 * `pickrank eval pairs` on a small Pick-a-Pic-format set built here, as JSONL + image files and as
 * Parquet (the dataset's own format: image bytes in jpg_0/jpg_1), and `pickrank eval images` on the
 * HPSv2 benchmark layout and on a manifest. Scores stored are the scorer's own for those bytes.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer } from "@pickrank/core";
import { EvalStore, STORE_FILE } from "@pickrank/eval";
import { renderSeed } from "../helpers/memory-backend.ts";
import { runCli } from "../helpers/cli.ts";
import { tinyModel } from "../helpers/tiny-model.ts";

let tmp: string;
let model: string;
let scorer: Scorer;
const LABELS: [number, number][] = [
  [1, 0],
  [0, 1],
  [0.5, 0.5],
];
const CAPTIONS = ["a red cube", "a green cat", "a blue sphere"];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-pairs-"));
  model = await tinyModel();
  scorer = await Scorer.create({ model, device: "cpu" });
});
afterAll(async () => {
  await scorer?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

/** Pairs i = 0..count-1: images of seeds 2i and 2i+1, labels cycling through (1,0), (0,1), tie. */
async function writePairs(dir: string, name: string, from: number, count: number): Promise<string> {
  await mkdir(path.join(dir, "img"), { recursive: true });
  const lines: string[] = [];
  for (let i = from; i < from + count; i++) {
    for (const k of [0, 1]) await writeFile(path.join(dir, "img", `${i}-${k}.png`), await renderSeed(2 * i + k, 20, 64, "png"));
    const [l0, l1] = LABELS[i % 3]!;
    lines.push(JSON.stringify({ caption: CAPTIONS[i % 3], jpg_0: `img/${i}-0.png`, jpg_1: `img/${i}-1.png`, label_0: l0, label_1: l1 }));
  }
  const file = path.join(dir, name);
  await writeFile(file, lines.join("\n") + "\n");
  return file;
}

describe("pickrank eval pairs", () => {
  it("JSONL + images: every pair stored with the scorer's scores; Parquet with the same pairs gives the same scores", {
    timeout: 300_000,
  }, async () => {
    const dir = path.join(tmp, "set");
    const validation = await writePairs(dir, "validation.jsonl", 0, 6);
    const test = await writePairs(dir, "test.jsonl", 6, 9);
    const out = path.join(tmp, "pairs-out");
    const args = [
      "eval",
      "pairs",
      test,
      "--validation",
      validation,
      "--model",
      model,
      "--device",
      "cpu",
      "--out",
      out,
      "--quiet",
      "--bootstrap",
      "100",
    ];
    const r = await runCli([...args, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ counts: unknown }>().counts).toEqual({ stored: 15, failed: 0 });
    const store = await EvalStore.open(path.join(out, STORE_FILE));
    const rows = await store.pairs();
    expect(rows.filter((p) => p.split === "validation")).toHaveLength(6);
    const row = rows.find((p) => p.id === "test.jsonl:2")!;
    expect(row).toMatchObject({ caption: "a green cat", label0: 0, label1: 1, split: "test" });
    const [s0, s1] = await scorer.score("a green cat", [
      await readFile(path.join(dir, "img/7-0.png")),
      await readFile(path.join(dir, "img/7-1.png")),
    ]);
    expect(row.score0).toBeCloseTo(s0!.score, 5);
    expect(row.score1).toBeCloseTo(s1!.score, 5);

    // The same test pairs as a Parquet file in Pick-a-Pic's columns (images as bytes), written by DuckDB.
    const selects = [];
    for (let i = 6; i < 15; i++) {
      const b64 = async (k: number) => (await readFile(path.join(dir, `img/${i}-${k}.png`))).toString("base64");
      const [l0, l1] = LABELS[i % 3]!;
      selects.push(
        `select '${CAPTIONS[i % 3]}' as caption, from_base64('${await b64(0)}') as jpg_0, from_base64('${await b64(1)}') as jpg_1, ` +
          `${l0}::double as label_0, ${l1}::double as label_1, ${1000 + i}::bigint as ranking_id, true as has_label`,
      );
    }
    const parquet = path.join(dir, "test.parquet");
    await store.query(`copy (${selects.join(" union all ")} order by ranking_id) to '${parquet}' (format parquet)`);
    await store.close();
    const outP = path.join(tmp, "pairs-parquet");
    const p = await runCli([
      "eval",
      "pairs",
      parquet,
      "--tie-threshold",
      "0.1",
      "--model",
      model,
      "--device",
      "cpu",
      "--out",
      outP,
      "--quiet",
      "--json",
    ]);
    expect(p.code, p.stderr).toBe(0);
    const sp = await EvalStore.open(path.join(outP, STORE_FILE));
    const fromParquet = await sp.pairs();
    await sp.close();
    expect(fromParquet.map((x) => x.id)).toEqual(Array.from({ length: 9 }, (_, k) => String(1006 + k)));
    const viaParquet = fromParquet.find((x) => x.id === "1007")!;
    expect([viaParquet.score0, viaParquet.score1]).toEqual([row.score0, row.score1]);

    // --resume: nothing new to score.
    const again = await runCli([...args, "--resume", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json<{ counts: unknown }>().counts).toEqual({ stored: 15, failed: 0 });
  });

  it("EXPECTED FAILURE - a label that is not Pick-a-Pic's: BAD_INPUT naming the line, before the folder is made", async () => {
    const f = path.join(tmp, "bad.jsonl");
    await writeFile(f, JSON.stringify({ caption: "x", jpg_0: "a.png", jpg_1: "b.png", label_0: 1, label_1: 1 }) + "\n");
    const out = path.join(tmp, "bad-out");
    const r = await runCli(["eval", "pairs", f, "--model", model, "--device", "cpu", "--out", out, "--quiet"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f}:1: expected label_0, label_1 of (1, 0), (0, 1) or (0.5, 0.5) but received (1, 1) [BAD_INPUT]`);
    expect(existsSync(path.join(out, STORE_FILE))).toBe(false);
  });

  it("EXPECTED FAILURE - a missing file, or neither --validation nor --tie-threshold: refused before the store; the fix then runs", {
    timeout: 300_000,
  }, async () => {
    const dir = path.join(tmp, "fix");
    const test = await writePairs(dir, "test.jsonl", 0, 2);
    const out = path.join(tmp, "fix-out");
    const common = ["--model", model, "--device", "cpu", "--out", out, "--quiet", "--bootstrap", "50"];
    const missing = await runCli(["eval", "pairs", path.join(dir, "tset.jsonl"), "--tie-threshold", "0.1", ...common]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/tset\.jsonl.*\[NOT_FOUND\]/);
    expect(existsSync(path.join(out, STORE_FILE))).toBe(false);
    const noThreshold = await runCli(["eval", "pairs", test, ...common]);
    expect(noThreshold.code).toBe(2);
    expect(noThreshold.stderr).toBe(
      "pickrank: Expected --validation <file> (validation pairs that choose the tie threshold) or --tie-threshold <t> " +
        "but received neither [BAD_INPUT]\n",
    );
    expect(existsSync(path.join(out, STORE_FILE))).toBe(false);
    // The corrected command runs in the same --out without --resume; its last line names the report.
    const fixed = await runCli(["eval", "pairs", test, "--tie-threshold", "0.1", ...common]);
    expect(fixed.code, fixed.stderr).toBe(0);
    expect(fixed.stdout.trim().split("\n").at(-1)).toMatch(/^2 pairs scored; summary\.json and report\.html in /);
    expect(existsSync(path.join(out, "report.html"))).toBe(true);
  });
});

describe("pickrank eval --help", () => {
  it("each subcommand's --out says what it writes: pairs no candidates.csv or images/, images no images/", async () => {
    const out = async (cmd: string) => {
      const r = await runCli(["eval", cmd, "--help"]);
      expect(r.code).toBe(0);
      return /--out <dir>\s+(.*?)\s+--resume/s.exec(r.stdout)![1]!.replace(/\s+/g, " ");
    };
    expect(await out("pairs")).toBe("evaluation folder: eval.duckdb, summary.json, report.html");
    expect(await out("images")).toBe(
      "evaluation folder: eval.duckdb, summary.json, candidates.csv, report.html (the images are not copied)",
    );
    expect(await out("run")).toBe("evaluation folder: eval.duckdb, images/ (the candidates), summary.json, candidates.csv, report.html");
  });
});

describe("pickrank eval images", () => {
  it("HPSv2 benchmark folders (one per configuration) and a manifest: every image scored by the scorer", { timeout: 300_000 }, async () => {
    const root = path.join(tmp, "hps");
    for (const [cfg, offset] of [
      ["modelA", 0],
      ["modelB", 100],
    ] as const)
      for (const style of ["anime", "photo"])
        for (let i = 0; i < 3; i++) {
          await mkdir(path.join(root, cfg, style), { recursive: true });
          await writeFile(path.join(root, cfg, style, `${String(i).padStart(5, "0")}.jpg`), await renderSeed(offset + i, 20, 64, "jpeg"));
        }
    const out = path.join(tmp, "hps-out");
    const r = await runCli([
      "eval",
      "images",
      path.join(root, "modelA"),
      path.join(root, "modelB"),
      "--model",
      model,
      "--device",
      "cpu",
      "--out",
      out,
      "--quiet",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ counts: unknown }>().counts).toEqual({ asked: 12, stored: 12, scored: 12, failed: 0 });
    const store = await EvalStore.open(path.join(out, STORE_FILE));
    const rows = await store.candidates();
    const prompts = await store.prompts();
    await store.close();
    const b1 = rows.find((x) => x.config === "modelB" && x.promptId === "hpsv2-photo-0001")!;
    const text = prompts.find((p) => p.id === "hpsv2-photo-0001")!.text;
    const [s] = await scorer.score(text, [await readFile(path.join(root, "modelB", "photo", "00001.jpg"))]);
    expect(b1.score).toBeCloseTo(s!.score, 5);

    const manifest = path.join(root, "manifest.csv");
    await writeFile(path.join(root, "not-an-image.jpg"), "text, not JPEG");
    await writeFile(
      manifest,
      'prompt,file,config\n"a cat, sitting",modelA/anime/00000.jpg,A\n"a cat, sitting",modelB/anime/00000.jpg,B\n"a cat, sitting",not-an-image.jpg,B\n',
    );
    const m = await runCli([
      "eval",
      "images",
      "--manifest",
      manifest,
      "--model",
      model,
      "--device",
      "cpu",
      "--out",
      path.join(tmp, "man-out"),
      "--quiet",
      "--json",
    ]);
    // One file is not an image: it fails alone (exit 3, PARTIAL), the others are scored.
    expect(m.code, m.stderr).toBe(3);
    expect(m.stderr).toMatch(/1 × BAD_IMAGE, e\.g\. .*not-an-image\.jpg/);
    expect(m.json<{ counts: unknown }>().counts).toEqual({ asked: 3, stored: 2, scored: 2, failed: 1 });

    // A manifest whose only file is missing scores nothing: a failure (exit 1) naming the first failure, not a partial run;
    // the corrected manifest then runs in the same --out without --resume (the failed run stored no row).
    const lone = path.join(root, "lone.jsonl");
    await writeFile(lone, JSON.stringify({ prompt: "a cat", file: "modelA/anime/missing.jpg", config: "A" }) + "\n");
    const loneOut = path.join(tmp, "lone-out");
    const loneArgs = ["eval", "images", "--manifest", lone, "--model", model, "--device", "cpu", "--out", loneOut, "--quiet"];
    const none = await runCli(loneArgs);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^pickrank: failed: none of 1 scored; the first failure: .*missing\.jpg: .*\[NOT_FOUND\]\n/);
    expect(none.stderr).not.toContain("partial");
    await writeFile(lone, JSON.stringify({ prompt: "a cat", file: "modelA/anime/00000.jpg", config: "A" }) + "\n");
    const again = await runCli([...loneArgs, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json<{ counts: unknown }>().counts).toEqual({ asked: 1, stored: 1, scored: 1, failed: 0 });
  });
});

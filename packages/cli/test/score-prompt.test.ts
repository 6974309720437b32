/**
 * The scoring prompt on the command line: `best-of` and `rank` score against the prompt without its
 * A1111 / ComfyUI syntax, show that text, take --score-prompt / --score-raw-prompt; best-of's summary
 * says where the rendered candidates are kept.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfyUI, type FakeComfyUI } from "../../../test/fakes/comfyui-server.ts";
import { tinyModel } from "../../../test/helpers/tiny-model.ts";
import { runCli } from "../../../test/helpers/cli.ts";
import { renderSeed } from "../../../test/helpers/memory-backend.ts";

let model: string;
let tmp: string;
let fake: FakeComfyUI;
let images: string[];

beforeAll(async () => {
  model = await tinyModel();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-score-prompt-"));
  fake = await startFakeComfyUI({});
  const dir = path.join(tmp, "images");
  await mkdir(dir);
  images = await Promise.all(
    [1, 2, 3].map(async (s) => {
      const f = path.join(dir, `${s}.png`);
      await writeFile(f, await renderSeed(s, 20, 64, "png"));
      return f;
    }),
  );
});
afterAll(async () => {
  await fake.close();
  await rm(tmp, { recursive: true, force: true });
});

const base = () => ["best-of", "--model", model, "--device", "cpu", "--url", fake.url];

describe("pickrank best-of scoring prompt", () => {
  it("scores the prompt without weights and tags, shows it above the table, and says where the work images are", async () => {
    const out = path.join(tmp, "table");
    const r = await runCli([...base(), "--prompt", "(a red fox:1.2), <lora:fox:0.8> BREAK snow", "-n", "3", "--seed", "4", "--out", out]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    const workDir = path.join(path.basename(out), ".pickrank", "work");
    expect(lines[0]).toBe("scored as: a red fox, snow");
    expect(lines[1]).toMatch(/^rank\s+seed\s+score\s+prob\s+top\s+saved$/);
    expect(lines.at(-1)).toMatch(
      new RegExp(
        `^work: 3 rendered candidates \\(\\d+(\\.\\d)? KB\\) kept in .*${workDir.replace(/\./g, "\\.")}, ` +
          "so the same command with another --top",
      ),
    );
  });

  it("--json carries scorePrompt; --score-prompt and --score-raw-prompt set it", async () => {
    const prompt = "(a red fox:1.2), snow";
    const j = async (...extra: string[]) => {
      const r = await runCli([...base(), "--prompt", prompt, "-n", "2", "--seed", "4", "--json", ...extra]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { scorePrompt: string; ranked: { seed: number; score: number }[] };
    };
    const clean = await j();
    const given = await j("--score-prompt", "a red fox, snow");
    const raw = await j("--score-raw-prompt");
    expect(clean.scorePrompt).toBe("a red fox, snow");
    expect(given.scorePrompt).toBe("a red fox, snow");
    expect(raw.scorePrompt).toBe(prompt);
    const bySeed = (x: typeof clean) => Object.fromEntries(x.ranked.map((c) => [c.seed, c.score]));
    expect(bySeed(given)).toEqual(bySeed(clean));
    expect(bySeed(raw)).not.toEqual(bySeed(clean));
  });

  it("best-of --score-prompt with --prompts, or with --score-raw-prompt (exit 2)", async () => {
    const file = path.join(tmp, "prompts.txt");
    await writeFile(file, "a\nb\n");
    const a = await runCli([...base(), "--prompts", file, "--score-prompt", "x"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain("Expected --score-prompt only with --prompt");
    const b = await runCli([...base(), "--prompt", "a", "--score-prompt", "x", "--score-raw-prompt"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("Expected either --score-prompt or --score-raw-prompt but received both");
  });
});

describe("pickrank rank scoring prompt", () => {
  it("scores the cleaned prompt by default, as --score-prompt with that text does; --score-raw-prompt the text as written", async () => {
    const rank = async (...extra: string[]) => {
      const r = await runCli(["rank", "--model", model, "--device", "cpu", "--json", ...extra, ...images]);
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { prompt: string; scorePrompt: string; results: { file: string; score: number }[] };
    };
    const prompt = "((a cat)), [on a mat], <lora:cats:1>";
    const clean = await rank("--prompt", prompt);
    expect(clean).toMatchObject({ prompt, scorePrompt: "a cat, on a mat" });
    const given = await rank("--prompt", prompt, "--score-prompt", "a cat, on a mat");
    expect(given.results).toEqual(clean.results);
    const raw = await rank("--prompt", prompt, "--score-raw-prompt");
    expect(raw.scorePrompt).toBe(prompt);
    expect(raw.results.map((x) => x.score)).not.toEqual(clean.results.map((x) => x.score));
  });

  it("rank warns when the scoring prompt is longer than CLIP reads", async () => {
    const long = Array.from({ length: 90 }, (_, i) => `word${i}`).join(" ");
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", long, images[0]!]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(
      /pickrank: warning: the scoring prompt is \d+ CLIP tokens but PickScore reads 75 \(77 with start and end\): \d+ are cut, from "word/,
    );
  });
});

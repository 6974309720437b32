/**
 * The examples for each kind of user, run as a user would run them (a separate process through tsx)
 * against the fake servers and the tiny model.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { repoRoot } from "../helpers/paths.ts";
import { tinyModel } from "../helpers/tiny-model.ts";
import { comfySettings } from "../helpers/best-of.ts";

let fake: FakeComfyUI;
let model: string;
let tmp: string;

beforeAll(async () => {
  [fake, model] = await Promise.all([startFakeComfyUI(), tinyModel()]);
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-examples-"));
});
afterAll(async () => {
  await fake.close();
  await rm(tmp, { recursive: true, force: true });
});

function run(cmd: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    p.on("exit", (code) => resolve({ code, out, err }));
  });
}

const tsx = (file: string, args: string[], env: Record<string, string>) =>
  run(process.execPath, ["--conditions=development", "--import", "tsx", path.join("examples", file), ...args], env);

describe("examples", () => {
  it("select-best-of.ts (pipeline author) ranks N candidates and saves the top ones", async () => {
    const out = path.join(tmp, "select");
    const before = fake.prompts.length;
    const r = await tsx("select-best-of.ts", ["a lighthouse at dusk"], {
      PICKRANK_URL: fake.url,
      PICKRANK_MODEL: model,
      PICKRANK_N: "4",
      PICKRANK_OUT: out,
    });
    expect(r.code, r.err).toBe(0);
    // p is a softmax over the N candidates: a clear winner prints as 1.000, so check the range, not a leading 0.
    const best = /^best: seed \d+, score -?\d+\.\d{3}, p=([01]\.\d{3}) \(cpu\)$/m.exec(r.out);
    expect(best, r.out).not.toBeNull();
    expect(Number(best?.[1])).toBeGreaterThan(0.25 - 1e-9); // the best of 4 has at least the mean probability
    expect(Number(best?.[1])).toBeLessThanOrEqual(1);
    expect(r.out.match(/^ {2}#\d seed/gm)).toHaveLength(4);
    expect(r.err).toContain("scored 4/4");
    expect(fake.prompts.length - before).toBe(4);
    expect((await readdir(out)).filter((f) => f.endsWith(".png"))).toHaveLength(2);
  });

  it("draft-then-refine.ts renders cheap drafts, refines the best, and reports agreement", async () => {
    const before = fake.prompts.length;
    const r = await tsx("draft-then-refine.ts", ["a red fox"], { PICKRANK_URL: fake.url, PICKRANK_MODEL: model, PICKRANK_N: "6" });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain("6 drafts → best 4 re-rendered at full settings");
    expect(r.out).toMatch(/agreement: spearman -?\d\.\d\d, kendall -?\d\.\d\d, draft best stayed best: (true|false)/);
    const sent = fake.prompts.slice(before).map((p) => comfySettings(p.prompt));
    expect(sent.map((s) => s.steps)).toEqual([8, 8, 8, 8, 8, 8, 30, 30, 30, 30]);
    expect(sent.slice(0, 6).every((s) => s.width === 384)).toBe(true);
    expect(sent.slice(6).every((s) => s.width === 768)).toBe(true);
  });

  it("artist-cli-recipe.ts runs the pickrank commands and shows the winner's PNG info", async () => {
    const out = path.join(tmp, "artist");
    const r = await tsx("artist-cli-recipe.ts", ["a watercolor fox", out], {
      PICKRANK_ARGS: `--url ${fake.url} --model ${model} --device cpu`,
    });
    expect(r.code, r.err).toBe(0);
    expect(r.out, r.err).toContain('$ pickrank best-of --prompt "a watercolor fox" -n 8 --top 3');
    const info =
      /PNG info of .*rank-01-seed-\d+\.png:\na watercolor fox\nNegative prompt: blurry, low quality, watermark\n.*Seed: \d+.*PickScore: -?\d+\.\d{3}, PickScore prob: ([01]\.\d{4}), PickScore rank: 1\/8/.exec(
        r.out,
      );
    expect(info, r.out + r.err).not.toBeNull();
    expect(Number(info?.[1])).toBeGreaterThanOrEqual(0.125 - 5e-5); // the best of 8 has at least the mean probability
    expect(Number(info?.[1])).toBeLessThanOrEqual(1);
    expect((await readdir(out)).filter((f) => f.endsWith(".png"))).toHaveLength(3);
    expect((await readdir(`${out}-drafted`)).filter((f) => f.endsWith(".png"))).toHaveLength(2);
  });

  const hasPnpm = (() => {
    try {
      execFileSync("pnpm", ["--version"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();
  it.skipIf(!hasPnpm)("artist-cli-recipe.sh runs as a shell recipe", async () => {
    const out = path.join(tmp, "artist-sh");
    const r = await run("bash", ["examples/artist-cli-recipe.sh", "a quiet harbour"], {
      OUT: out,
      PICKRANK_ARGS: `--url ${fake.url} --model ${model} --device cpu --quiet`,
    });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^\s*rank\s+seed\s+score\s+prob/m);
    expect((await readdir(out)).filter((f) => f.endsWith(".png"))).toHaveLength(3);
  });
});

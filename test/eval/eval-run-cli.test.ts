/**
 * `pickrank eval run` end to end, in process (the bin's main()), against the fake ComfyUI and
 * Automatic1111 servers with the tiny CLIP as the selector's model and the same CLIP converted to fp16
 * as the judge: 50 PartiPrompts × N = 4 × two configurations, then the same command with --resume.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvalStore, loadPromptSet, seedsFor, STORE_FILE, summarizeRun, type RunSummary } from "@pickrank/eval";
import { startFakeA1111, type FakeA1111 } from "../fakes/a1111-server.ts";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { comfySettings } from "../helpers/best-of.ts";
import { runCli } from "../helpers/cli.ts";
import { tinyModel } from "../helpers/tiny-model.ts";

let tmp: string;
let model: string;
let judge: string;
let comfy: FakeComfyUI;
let a1111: FakeA1111;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-run-"));
  [model, judge, comfy, a1111] = await Promise.all([tinyModel(), tinyModel("fp16"), startFakeComfyUI(), startFakeA1111()]);
});
afterAll(async () => {
  await Promise.all([comfy?.close(), a1111?.close()]);
  await rm(tmp, { recursive: true, force: true });
});

interface Summary {
  counts: { asked: number; stored: number; scored: number; failed: number };
  n: number;
  configs: { name: string; backend: string }[];
  metrics: RunSummary;
}

describe("pickrank eval run", () => {
  it("50 PartiPrompts × 4 seeds × ComfyUI and A1111, judged; --resume renders nothing again", { timeout: 600_000 }, async () => {
    const out = path.join(tmp, "parti50");
    const args = [
      "eval",
      "run",
      "--prompts",
      "parti",
      "--limit",
      "50",
      "-n",
      "4",
      "--seed",
      "11",
      "--config",
      `name=comfy,backend=comfyui,url=${comfy.url},steps=4`,
      "--config",
      `name=a1111,backend=a1111,url=${a1111.url},steps=4`,
      "--model",
      model,
      "--judge",
      judge,
      "--device",
      "cpu",
      "--bootstrap",
      "200",
      "--out",
      out,
      "--quiet",
    ];
    const r = await runCli([...args, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const doc = r.json<Summary>();
    expect(doc.counts).toEqual({ asked: 400, stored: 400, scored: 400, failed: 0 });
    expect(doc.configs.map((c) => [c.name, c.backend])).toEqual([
      ["comfy", "comfyui"],
      ["a1111", "a1111"],
    ]);
    expect(JSON.parse(await readFile(path.join(out, "summary.json"), "utf8"))).toEqual(doc);

    // Each server rendered each of its 200 candidates once, with the same seeds on both.
    const prompts = (await loadPromptSet("parti", { limit: 50 })).prompts;
    const want = prompts.flatMap((p) => seedsFor(p.id, 4, 11)).sort((x, y) => x - y);
    const comfySeeds = comfy.prompts.map((p) => comfySettings(p.prompt as never).seed).sort((x, y) => x - y);
    const a1111Seeds = a1111.requests.map((b) => b["seed"] as number).sort((x, y) => x - y);
    expect(comfySeeds).toEqual(want);
    expect(a1111Seeds).toEqual(want);

    // Every row is scored by both models, and its image is on disk.
    const store = await EvalStore.open(path.join(out, STORE_FILE));
    const rows = await store.candidates();
    const candidateRows = await store.candidateRows();
    await store.close();
    // The summary's metrics are summarizeRun's over the stored rows, with the judge's curves too.
    expect(doc.metrics).toEqual(summarizeRun(prompts, candidateRows, { bootstrap: { resamples: 200 }, configs: ["comfy", "a1111"] }));
    expect(doc.metrics.configs.map((c) => [c.config, c.prompts, c.kMax, c.judge !== null])).toEqual([
      ["comfy", 50, 4, true],
      ["a1111", 50, 4, true],
    ]);
    expect(rows).toHaveLength(400);
    expect(rows.every((x) => Number.isFinite(x.score) && Number.isFinite(x.judgeScore))).toBe(true);
    expect((await stat(path.join(out, rows[0]!.image))).size).toBeGreaterThan(0);
    const csv = (await readFile(path.join(out, "candidates.csv"), "utf8")).trim().split("\n");
    expect(csv[0]).toBe("config,prompt_id,category,challenge,prompt,seed_index,seed,score,judge_score,image,backend,render_ms");
    expect(csv).toHaveLength(401);
    // The report's gallery shows every candidate from the evaluation folder, by a path relative to it.
    const html = await readFile(path.join(out, "report.html"), "utf8");
    const srcs = [...html.matchAll(/<img[^>]* src="(images\/[^"]+)"/g)].map((m) => decodeURIComponent(m[1]!.replaceAll("&amp;", "&")));
    expect(new Set(srcs)).toEqual(new Set(rows.map((x) => x.image)));
    await Promise.all(srcs.slice(0, 20).map((s) => stat(path.join(out, s))));

    // The same command again: refused without --resume, nothing rendered with it.
    const refused = await runCli(args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/pass --resume to continue it.*\[CONFLICT\]/);
    const [cBefore, aBefore] = [comfy.prompts.length, a1111.requests.length];
    const again = await runCli([...args, "--resume", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.json<Summary>().counts).toEqual(doc.counts);
    expect([comfy.prompts.length, a1111.requests.length]).toEqual([cBefore, aBefore]);
  });

  it("EXPECTED FAILURE - --resume with another N: CONFLICT naming the setting; a server down: exit 1 naming it", async () => {
    const out = path.join(tmp, "conflict");
    const base = ["eval", "run", "--prompts", "parti", "--limit", "1", "--model", model, "--device", "cpu", "--out", out, "--quiet"];
    const cfg = ["--config", `name=c,backend=a1111,url=${a1111.url},steps=2`];
    expect((await runCli([...base, ...cfg, "-n", "2"])).code).toBe(0);
    const again = await runCli([...base, ...cfg, "-n", "2"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toBe(
      `pickrank: Expected an empty evaluation folder for --out ${out} but it holds an earlier evaluation (pickrank eval run): ` +
        "pass --resume to continue it, or choose another --out [CONFLICT]\n",
    );
    const r = await runCli([...base, ...cfg, "-n", "3", "--resume"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/but n differs: 2 → 3 \(stored → now\); for new settings choose another --out, or delete .*\[CONFLICT\]/);
    // A changed configuration: its name, the field and both values, in one short line (not the settings' JSON).
    const ckpt = ["--config", `name=c,backend=a1111,url=${a1111.url},steps=2,checkpoint=sd15.safetensors`];
    const c = await runCli([...base, ...ckpt, "-n", "2", "--resume"]);
    expect(c.code).toBe(1);
    expect(c.stderr).toBe(
      `pickrank: Expected --resume to ask for what the stored run in ${out} was made with, but configuration "c" differs: ` +
        `checkpoint (none) → sd15.safetensors (stored → now); for new settings choose another --out, or delete ${out} [CONFLICT]\n`,
    );
    const down = await runCli([...base, "--config", "name=gone,backend=a1111,url=http://127.0.0.1:9", "--out", path.join(tmp, "down")]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/Configuration gone: .*\[BACKEND_UNREACHABLE\]/);
  });

  it("EXPECTED FAILURE - bad --config: BAD_INPUT (exit 2) naming the key", async () => {
    const r = await runCli(["eval", "run", "--prompts", "parti", "--config", "name=x,colour=red", "--out", path.join(tmp, "bad")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected --config keys from name, backend, url.* but received "colour"/);
  });
});

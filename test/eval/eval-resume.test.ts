/**
 * `pickrank eval run` killed with SIGKILL mid-run (the real bin as a child process), then resumed:
 * every candidate stored before the kill is kept and none of them is rendered again (counted at the
 * fake ComfyUI), and the resumed run completes the set.
 */
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvalStore, STORE_FILE } from "@pickrank/eval";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { waitFor } from "../helpers/async.ts";
import { comfySettings } from "../helpers/best-of.ts";
import { runCli, spawnCli } from "../helpers/cli.ts";
import { tinyModel } from "../helpers/tiny-model.ts";

let tmp: string;
let model: string;
let comfy: FakeComfyUI;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-kill-"));
  [model, comfy] = await Promise.all([tinyModel(), startFakeComfyUI({ stepDelayMs: 15 })]);
});
afterAll(async () => {
  await comfy?.close();
  await rm(tmp, { recursive: true, force: true });
});

async function storedImages(out: string): Promise<number> {
  const dir = path.join(out, "images", "slow");
  const prompts = await readdir(dir).catch(() => [] as string[]);
  let n = 0;
  for (const p of prompts) n += (await readdir(path.join(dir, p)).catch(() => [] as string[])).filter((f) => f.endsWith(".png")).length;
  return n;
}

describe("pickrank eval run after kill -9", () => {
  it("--resume keeps every stored candidate and renders none of them again", { timeout: 300_000 }, async () => {
    const out = path.join(tmp, "run");
    const args = ["eval", "run", "--prompts", "parti", "--limit", "6", "-n", "4", "--config", `name=slow,backend=comfyui,url=${comfy.url}`];
    const common = ["--model", model, "--device", "cpu", "--out", out, "--quiet", "--bootstrap", "100"];
    const child = spawnCli([...args, ...common]);
    await waitFor(async () => (await storedImages(out)) >= 6, "six candidates on disk", 120_000);
    child.proc.kill("SIGKILL");
    const ended = await child.done;
    expect(ended.signal).toBe("SIGKILL");

    const store = await EvalStore.open(path.join(out, STORE_FILE));
    const before = await store.candidates();
    await store.close();
    // An image is written before its row: up to one per running job may be on disk without a row (rendered again).
    expect(before.length).toBeGreaterThanOrEqual(4);
    expect(before.length).toBeLessThan(24);
    const storedSeeds = new Set(before.map((c) => c.seed));
    const queuedBefore = comfy.prompts.length;

    const r = await runCli([...args, ...common, "--resume", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ counts: unknown }>().counts).toEqual({ asked: 24, stored: 24, scored: 24, failed: 0 });
    const resent = comfy.prompts.slice(queuedBefore).map((p) => comfySettings(p.prompt as never).seed);
    expect(resent.filter((s) => storedSeeds.has(s))).toEqual([]);
    expect(resent.length).toBe(24 - before.length);

    const after = await EvalStore.open(path.join(out, STORE_FILE));
    const rows = await after.candidates();
    await after.close();
    expect(rows).toHaveLength(24);
    // Rows stored before the kill are unchanged (same image, same seed); the unscored ones got their score.
    for (const b of before)
      expect(rows.find((x) => x.promptId === b.promptId && x.seedIndex === b.seedIndex)).toMatchObject({ image: b.image, seed: b.seed });
    expect(rows.every((x) => x.score !== null)).toBe(true);
  });
});

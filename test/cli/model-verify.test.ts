/**
 * `pickrank model convert --dtype int8` and `pickrank model verify` through the CLI (in-process): the
 * int8 conversion of the tiny CLIP held against its fp32 conversion on the reference images.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readManifest } from "@pickrank/core";
import { runCli } from "../helpers/cli.ts";
import { referenceDir, tinyClipDir } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";
import { INT8_FIDELITY } from "../../packages/core/test/tolerances.ts";

let tmp: string;
let fp32: string;
const images = path.join(referenceDir, "images");

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-verify-"));
  fp32 = await tinyModel();
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

interface VerifyJson {
  prompts: number;
  images: number;
  imageCosine: { min: number };
  textCosine: { min: number };
  scoreError: { maxAbs: number; relMaxAbs: number };
  kendallTau: { min: number; mean: number };
  sameBest: number;
  device: string;
  graphVariant: string;
}

describe("pickrank model convert --dtype int8 / model verify", () => {
  it("converts to int8 (no fused variant), and verify reports its fidelity against fp32 on the images of a folder", async () => {
    const int8 = path.join(tmp, "int8");
    const c = await runCli(["model", "convert", tinyClipDir, "--out", int8, "--dtype", "int8"]);
    expect(c.code, c.stderr).toBe(0);
    const m = await readManifest(int8);
    expect([m.dtype, m.variants]).toEqual(["int8", undefined]);

    const prompts = ["a photo of a cat", "an oil painting of a lighthouse"];
    const args = ["model", "verify", "--model", int8, "--reference", fp32, ...prompts.flatMap((p) => ["--prompt", p]), images];
    const r = await runCli([...args, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<VerifyJson>();
    expect([j.prompts, j.images, j.device, j.graphVariant]).toEqual([2, 6, "cpu", "standard"]);
    expect(j.imageCosine.min).toBeGreaterThan(INT8_FIDELITY.tiny.imageCosineMin.bound);
    expect(j.textCosine.min).toBeGreaterThan(INT8_FIDELITY.tiny.textCosineMin.bound);
    expect(j.scoreError.relMaxAbs).toBeLessThan(INT8_FIDELITY.tiny.scoreRelMaxAbs.bound);
    expect(j.kendallTau.min).toBeGreaterThanOrEqual(INT8_FIDELITY.tiny.kendallTauMin.bound);

    const table = await runCli(args);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/Kendall tau per prompt/);
    expect(table.stdout).toMatch(/2 prompt\(s\) × 6 image\(s\) on cpu \(standard graphs\): same best image for \d of 2/);
  });

  it("verify of the fp32 model against itself: cosines 1, tau 1, every best image the same", async () => {
    const r = await runCli(["model", "verify", "--model", fp32, "--reference", fp32, "--prompt", "a red fox", images, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<VerifyJson>();
    expect(j.imageCosine.min).toBeGreaterThan(0.999999);
    expect(j.scoreError.maxAbs).toBeLessThan(1e-4);
    expect(j.kendallTau).toEqual({ min: 1, mean: 1 });
    expect(j.sameBest).toBe(1);
  });

  it("convert --no-fused writes the standard graphs only", async () => {
    const out = path.join(tmp, "nofused");
    const c = await runCli(["model", "convert", tinyClipDir, "--out", out, "--no-fused"]);
    expect(c.code, c.stderr).toBe(0);
    expect((await readManifest(out)).variants).toBeUndefined();
  });

  it("BAD CALL - verify without --prompt, and with --dtype int4 on convert: usage errors (exit 2) naming the flag", async () => {
    const v = await runCli(["model", "verify", "--model", fp32, "--reference", fp32, images]);
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/--prompt/);
    const c = await runCli(["model", "convert", tinyClipDir, "--out", path.join(tmp, "x"), "--dtype", "int4"]);
    expect(c.code).toBe(2);
    expect(c.stderr).toMatch(/Expected fp32, fp16 or int8 but received "int4"/);
  });
});

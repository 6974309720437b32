/**
 * pruneCache against a cache filled by a real pull from the fake hub: what goes (the converted
 * checkpoint's download, dead conversions' temp folders), what stays (the converted model, still
 * usable; tokenizer downloads; partial downloads; a live conversion's folder), dry runs, and a pull
 * after a prune downloading the checkpoint again for another dtype.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { diskUsage, pruneCache } from "../src/hub/prune.ts";
import { pullModel, type PullOptions } from "../src/hub/pull.ts";
import { Scorer } from "../src/scorer.ts";
import { startFakeHub, type FakeHub } from "../../../test/fakes/fake-hub.ts";

const FAST: PullOptions = { retries: 2, retryDelayMs: 5, connectTimeoutMs: 5_000, idleTimeoutMs: 5_000, token: "" };

let tmp: string;
let hub: FakeHub;

beforeEach(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "pickrank-prune-"));
  vi.stubEnv("HF_HUB_OFFLINE", "");
  hub = await startFakeHub();
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await hub.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("pruneCache", () => {
  it("removes a converted checkpoint's download and keeps the model usable; another dtype downloads it again", async () => {
    const cacheDir = path.join(tmp, "cache");
    const pulled = await pullModel({ ...FAST, endpoint: hub.url, cacheDir });
    const commit = pulled.manifest.source.revision!;
    const downloads = path.join(cacheDir, "downloads", "yuvalkirstain--PickScore_v1", commit);
    const tokenizerDownloads = readdirSync(path.join(cacheDir, "downloads")).filter((d) => d !== "yuvalkirstain--PickScore_v1");
    expect(tokenizerDownloads).toHaveLength(1);
    const checkpointBytes = await diskUsage(downloads);
    expect(checkpointBytes).toBeGreaterThan(0);
    // A partial download of something else stays: a resumed pull continues from it.
    const partDir = path.join(cacheDir, "downloads", "someone--other", "a".repeat(40));
    mkdirSync(partDir, { recursive: true });
    writeFileSync(path.join(partDir, "model.safetensors.part"), Buffer.alloc(100));

    const dry = await pruneCache({ cacheDir, dryRun: true });
    expect(dry.dryRun).toBe(true);
    expect(dry.removed).toEqual([
      { path: downloads, bytes: checkpointBytes, kind: "checkpoint", what: `yuvalkirstain/PickScore_v1@${commit.slice(0, 12)}, converted` },
    ]);
    expect(dry.freedBytes).toBe(checkpointBytes);
    expect(existsSync(downloads)).toBe(true);

    const res = await pruneCache({ cacheDir });
    expect(res.removed.map((r) => r.path)).toEqual([downloads]);
    expect(existsSync(downloads)).toBe(false);
    expect(existsSync(path.join(partDir, "model.safetensors.part"))).toBe(true);
    expect(readdirSync(path.join(cacheDir, "downloads")).sort()).toEqual([...tokenizerDownloads, "someone--other"].sort());
    expect((await pruneCache({ cacheDir })).removed).toEqual([]);

    // The converted folder is self-contained: it still loads and scores, and a pull of it stays instant.
    const scorer = await Scorer.create({ model: pulled.dir, device: "cpu" });
    try {
      const emb = await scorer.embedText("a cat");
      expect(emb.length).toBeGreaterThan(0);
    } finally {
      await scorer.dispose();
    }
    const before = hub.requests.length;
    expect((await pullModel({ ...FAST, endpoint: hub.url, cacheDir })).cached).toBe(true);
    expect(hub.requests.length).toBe(before);

    // fp16 needs the checkpoint again: it is downloaded (verified) anew, not read from a half-pruned folder.
    const fp16 = await pullModel({ ...FAST, endpoint: hub.url, cacheDir, dtype: "fp16" });
    expect(fp16.cached).toBe(false);
    expect(hub.requests.slice(before).some((r) => r.method === "GET" && r.url.includes("model.safetensors") && r.status < 400)).toBe(true);
  });

  it("removes temp folders of conversions whose process is gone, not those of a live one", async () => {
    const cacheDir = path.join(tmp, "cache");
    const models = path.join(cacheDir, "models");
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const deadTmp = path.join(models, `.yuvalkirstain--PickScore_v1--0123456789ab--fp32.${dead}.deadbeef.tmp`);
    const liveTmp = path.join(models, `.yuvalkirstain--PickScore_v1--0123456789ab--fp16.${process.pid}.cafef00d.tmp`);
    for (const d of [deadTmp, liveTmp]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(path.join(d, "text.onnx"), Buffer.alloc(1234));
    }
    const res = await pruneCache({ cacheDir });
    expect(res.removed).toEqual([{ path: deadTmp, bytes: 1234, kind: "temporary", what: "left by an interrupted conversion" }]);
    expect(existsSync(deadTmp)).toBe(false);
    expect(existsSync(liveTmp)).toBe(true);
  });

  it("an empty or missing cache has nothing to prune; a bad cacheDir is BAD_INPUT", async () => {
    expect(await pruneCache({ cacheDir: path.join(tmp, "nothing-here") })).toEqual({
      cacheDir: path.join(tmp, "nothing-here"),
      dryRun: false,
      removed: [],
      freedBytes: 0,
    });
    await expect(pruneCache({ cacheDir: "" })).rejects.toMatchObject({ code: "BAD_INPUT" });
  });
});

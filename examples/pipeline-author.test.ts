import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readFakeImageInfo, startFakeComfyUI } from "../test/fakes/comfyui-server.ts";
import { startFakeA1111 } from "../test/fakes/a1111-server.ts";
import { generateToDisk } from "./pipeline-author.ts";

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((c) => c()));
});

describe("examples/pipeline-author generateToDisk", () => {
  it("writes every candidate from a ComfyUI + A1111 pool with its seed, and a candidates.json", async () => {
    const comfy = await startFakeComfyUI({ stepDelayMs: 2 });
    const a1111 = await startFakeA1111({ stepDelayMs: 2, auth: { username: "me", password: "pw" } });
    const out = await mkdtemp(path.join(tmpdir(), "pickrank-example-"));
    cleanup.push(
      () => comfy.close(),
      () => a1111.close(),
      () => rm(out, { recursive: true, force: true }),
    );
    const lines: string[] = [];
    const r = await generateToDisk({
      prompt: "a lighthouse at dusk",
      n: 5,
      seed: 77,
      params: { steps: 3, width: 64, height: 64 },
      servers: [
        { kind: "comfyui", url: comfy.url },
        { kind: "a1111", url: a1111.url.replace("http://", "http://me:pw@") },
      ],
      workflow: path.resolve(import.meta.dirname, "workflows/txt2img-sd.json"),
      out,
      log: (l) => lines.push(l),
    });
    expect(r.failed).toEqual([]);
    expect(r.files.map((f) => [f.index, f.seed])).toEqual([
      [0, 77],
      [1, 78],
      [2, 79],
      [3, 80],
      [4, 81],
    ]);
    for (const f of r.files)
      expect(readFakeImageInfo(await readFile(f.file))).toMatchObject({ seed: f.seed, prompt: "a lighthouse at dusk" });
    expect((await readdir(out)).sort()).toEqual([
      "000-seed77.png",
      "001-seed78.png",
      "002-seed79.png",
      "003-seed80.png",
      "004-seed81.png",
      "candidates.json",
    ]);
    const manifest = JSON.parse(await readFile(path.join(out, "candidates.json"), "utf8")) as { candidates: { seed: number }[] };
    expect(manifest.candidates.map((c) => c.seed)).toEqual([77, 78, 79, 80, 81]);
    expect(r.stats?.map((s) => s.completed).reduce((a, b) => a + b)).toBe(5);
    expect(lines.join("\n")).not.toContain("me:pw");
  });

  it("stops the servers' work when cancelled", async () => {
    const comfy = await startFakeComfyUI({ stepDelayMs: 10 });
    const out = await mkdtemp(path.join(tmpdir(), "pickrank-example-"));
    cleanup.push(
      () => comfy.close(),
      () => rm(out, { recursive: true, force: true }),
    );
    const ac = new AbortController();
    const err = await generateToDisk({
      prompt: "x",
      n: 4,
      seed: 1,
      params: { steps: 5 },
      servers: [{ kind: "comfyui", url: comfy.url }],
      out,
      signal: ac.signal,
      log: (l) => {
        if (l.startsWith("✓")) ac.abort();
      },
    }).catch((e: Error & { code: string }) => e);
    expect(err).toMatchObject({ code: "ABORTED" });
    expect(comfy.interrupts.length + comfy.deleted.length).toBeGreaterThan(0);
  });
});

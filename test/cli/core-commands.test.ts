import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, spawnCli } from "../helpers/cli.ts";
import { referenceDir, sharedDir, tinyClipDir } from "../helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";
import { closedPort } from "../helpers/net.ts";

let tmp: string;
let model: string;
const images = ["square_1024.png", "photo_768.jpg", "rgba_512.png"].map((f) => path.join(referenceDir, "images", f));

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-cli-"));
  model = await tinyModel();
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await removeTinyModels();
});

describe("pickrank tokenize", () => {
  it("--json prints the reference ids", async () => {
    const cases = JSON.parse(await readFile(path.join(referenceDir, "tokenizer.json"), "utf8")).cases as { text: string; ids: number[] }[];
    const c = cases[2]!;
    const r = await runCli(["tokenize", "--tokenizer", path.join(sharedDir, "data/clip-tokenizer"), "--json", c.text]);
    expect(r.code).toBe(0);
    expect(r.json()).toEqual({ ids: c.ids });
  });

  it("uses the bundled tokenizer by default", async () => {
    const r = await runCli(["tokenize", "--json", "a photo of a cat"]);
    expect(r.code).toBe(0);
    const ids = r.json<{ ids: number[] }>().ids;
    expect(ids).toHaveLength(77);
    expect(ids[0]).toBe(49406);
  });

  it("a folder without tokenizer files fails naming the folder", async () => {
    const r = await runCli(["tokenize", "--tokenizer", tmp, "--json", "x"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(tmp);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("BAD_TOKENIZER");
  });
});

describe("pickrank preprocess", () => {
  it("writes float32 LE [3,224,224] close to CLIPImageProcessor's", async () => {
    const out = path.join(tmp, "px.bin");
    const r = await runCli(["preprocess", path.join(referenceDir, "images/photo_768.jpg"), "--out", out]);
    expect(r.code).toBe(0);
    const got = await readFile(out);
    expect(got.byteLength).toBe(3 * 224 * 224 * 4);
    const want = await readFile(path.join(referenceDir, "pixel_values/photo_768.jpg.bin"));
    let sum = 0;
    for (let i = 0; i < 3 * 224 * 224; i++) sum += Math.abs(got.readFloatLE(i * 4) - want.readFloatLE(i * 4));
    expect(sum / (3 * 224 * 224)).toBeLessThan(0.02);
  });

  it("refuses a file that is not an image and leaves no output", async () => {
    const bad = path.join(tmp, "bad.png");
    await writeFile(bad, "hello");
    const out = path.join(tmp, "bad.bin");
    const r = await runCli(["preprocess", bad, "--out", out]);
    // Exit codes follow the contract's code table: BAD_IMAGE is a bad input (2).
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/BAD_IMAGE/);
    await expect(stat(out)).rejects.toThrow();
  });

  it("without --out is a usage error (exit 2)", async () => {
    const r = await runCli(["preprocess", images[0]!]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--out");
  });
});

describe("pickrank model convert", () => {
  it("converts the tiny CLIP and prints the folder", async () => {
    const out = path.join(tmp, "converted");
    const r = await runCli(["model", "convert", tinyClipDir, "--out", out, "--json"]);
    expect(r.code).toBe(0);
    const j = r.json<{ dir: string; manifest: { dtype: string; logitScale: number } }>();
    expect(j.manifest.dtype).toBe("fp32");
    expect(j.manifest.logitScale).toBeCloseTo(4.6052, 4);
    await stat(path.join(out, "pickrank.json"));
    await stat(path.join(out, "text.onnx"));
    await stat(path.join(out, "vision.onnx"));
  });

  it("--dtype other than fp32/fp16 is a usage error", async () => {
    const r = await runCli(["model", "convert", tinyClipDir, "--out", path.join(tmp, "x"), "--dtype", "int8"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected fp32 or fp16 but received "int8"/);
  });

  it("a folder without config.json fails with BAD_MODEL", async () => {
    const r = await runCli(["model", "convert", tmp, "--out", path.join(tmp, "y")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/config\.json/);
  });
});

describe("pickrank rank", () => {
  it("--json prints the contract shape, best first", async () => {
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a photo of a cat", "--json", ...images]);
    expect(r.code, r.stderr).toBe(0);
    const j = r.json<{ prompt: string; device: string; results: { file: string; score: number; prob: number; rank: number }[] }>();
    expect(j.prompt).toBe("a photo of a cat");
    expect(j.device).toBe("cpu");
    expect(j.results.map((x) => x.rank)).toEqual([1, 2, 3]);
    expect(new Set(j.results.map((x) => x.file))).toEqual(new Set(images));
    for (let i = 1; i < j.results.length; i++) expect(j.results[i - 1]!.score).toBeGreaterThanOrEqual(j.results[i]!.score);
    expect(j.results.reduce((a, x) => a + x.prob, 0)).toBeCloseTo(1, 5);
    expect(Object.keys(j.results[0]!).sort()).toEqual(["file", "prob", "rank", "score"]);
  });

  it("prints a table for people and the device on stderr", async () => {
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", ...images]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/rank\s+score\s+prob\s+file/);
    expect(r.stderr).toMatch(/device cpu/);
  });

  it("an unknown device is a usage error naming the choices", async () => {
    const r = await runCli(["rank", "--model", model, "--device", "tpu", "--prompt", "x", images[0]!]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected one of auto, cpu, webgpu, cuda but received "tpu"/);
  });

  it("cuda without its provider is DEVICE_UNAVAILABLE, not a silent fallback", async () => {
    const r = await runCli(["rank", "--model", model, "--device", "cuda", "--prompt", "x", "--json", images[0]!]);
    if (r.code === 0) return; // a machine with the CUDA provider
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("DEVICE_UNAVAILABLE");
  });

  it("a missing image file fails naming it", async () => {
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "x", path.join(tmp, "nope.png")]);
    expect(r.code).toBe(2); // the code table: a missing input file is a usage error
    expect(r.stderr).toMatch(/\[(NOT_FOUND|BAD_IMAGE)\]/);
    expect(r.stderr).toContain("nope.png");
  });

  it("a folder stands for the images inside it (not other files, not subfolders), scored like the files named one by one", async () => {
    const dir = path.join(tmp, "folder-rank");
    await mkdir(path.join(dir, "sub"), { recursive: true });
    const names = ["img10.png", "img2.jpg", "img1.png"];
    for (const [i, n] of names.entries()) await copyFile(images[i]!, path.join(dir, n));
    await writeFile(path.join(dir, "notes.txt"), "not an image");
    await copyFile(images[0]!, path.join(dir, "sub", "deeper.png"));
    const byFolder = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", dir]);
    expect(byFolder.code, byFolder.stderr).toBe(0);
    const files = ["img1.png", "img2.jpg", "img10.png"].map((n) => path.join(dir, n));
    const byFiles = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", ...files]);
    type Out = { results: { file: string; score: number }[] };
    expect(byFolder.json<Out>().results).toEqual(byFiles.json<Out>().results);
    expect(byFolder.json<Out>().results.map((x) => x.file).sort()).toEqual(files.sort());
  });

  it("a folder with no images is a usage error naming it", async () => {
    const dir = path.join(tmp, "empty-folder");
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "readme.md"), "# nothing here");
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "x", "--json", dir]);
    expect(r.code).toBe(2);
    expect(r.json<{ error: { code: string; message: string } }>().error).toMatchObject({
      code: "BAD_INPUT",
      message: expect.stringContaining(`Folder ${dir} holds no images; expected files ending in .png`),
    });
  });

  it("shows a progress bar over many images, on stderr only", async () => {
    const many = Array.from({ length: 10 }, (_, i) => images[i % images.length]!);
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--batch-size", "4", "--prompt", "a cat", ...many]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/scoring .* 4\/10/);
    expect(r.stderr).toMatch(/scoring .* 100% 10\/10/);
    expect(r.stdout).not.toContain("scoring");
  });
});

describe("the bin as a real process", () => {
  it("--help lists the commands; each command has its own help", async () => {
    const r = await spawnCli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["tokenize", "preprocess", "model", "rank"]) expect(r.stdout).toContain(c);
    const h = await spawnCli(["rank", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("--device");
  });

  it("rank --json through the bin", async () => {
    const r = await spawnCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", images[0]!, images[1]!]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ results: unknown[] }>().results).toHaveLength(2);
  });
});

describe("pickrank model pull / list (fake hub, temp cache)", () => {
  it("downloads, converts, prints the folder; the second call is instant; list shows it; prune frees the download", async () => {
    const { startFakeHub } = await import("../fakes/fake-hub.ts");
    const hub = await startFakeHub();
    const env = { HF_ENDPOINT: hub.url, PICKRANK_CACHE: path.join(tmp, "cache"), HF_TOKEN: "", HF_HUB_DISABLE_IMPLICIT_TOKEN: "1" };
    try {
      const first = await spawnCli(["model", "pull", "--json"], env);
      expect(first.code, first.stderr).toBe(0);
      const j = first.json<{ dir: string; cached: boolean; manifest: { source: { repo: string; revision: string } } }>();
      expect(j.cached).toBe(false);
      expect(j.manifest.source.repo).toBe("yuvalkirstain/PickScore_v1");
      await stat(path.join(j.dir, "pickrank.json"));
      const seen = hub.requests.length;
      const second = await spawnCli(["model", "pull"], env);
      expect(second.code).toBe(0);
      expect(second.stdout.trim()).toBe(j.dir);
      expect(hub.requests.length).toBe(seen);
      const list = await spawnCli(["model", "list", "--json"], env);
      expect(list.json<{ dir: string }[]>().map((m) => m.dir)).toEqual([j.dir]);
      expect(list.json<{ bytes: number }[]>()[0]!.bytes).toBeGreaterThan(0);
      // prune frees the downloaded checkpoint; the converted model still serves rank
      const prune = await spawnCli(["model", "prune", "--json"], env);
      expect(prune.code, prune.stderr).toBe(0);
      const pr = prune.json<{ removed: { path: string; kind: string }[]; freedBytes: number }>();
      expect(pr.removed.map((x) => x.kind)).toEqual(["checkpoint"]);
      expect(pr.removed[0]!.path).toContain(j.manifest.source.revision);
      expect(pr.freedBytes).toBeGreaterThan(0);
      const again = await spawnCli(["model", "prune"], env);
      expect(again.stdout).toContain("Nothing to prune in ");
      // rank without --model uses the cached model
      const r = await spawnCli(["rank", "--device", "cpu", "--prompt", "a cat", "--json", images[0]!], env);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      await hub.close();
    }
  });

  it("an unreachable HF_ENDPOINT fails with DOWNLOAD_FAILED naming it", async () => {
    const port = await closedPort();
    const r = await spawnCli(["model", "pull", "--json"], { HF_ENDPOINT: `http://127.0.0.1:${port}`, PICKRANK_CACHE: path.join(tmp, "cache2") });
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string; message: string } }>().error.code).toBe("DOWNLOAD_FAILED");
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
  });

  it("a reserved port in HF_ENDPOINT fails at once, saying fetch refuses it", async () => {
    const r = await spawnCli(["model", "pull", "--json"], { HF_ENDPOINT: "http://127.0.0.1:9", PICKRANK_CACHE: path.join(tmp, "cache3") });
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string; message: string } }>().error.message).toMatch(/fetch refuses port 9 \(a reserved port\)/);
  });
});


/**
 * The core commands (tokenize, preprocess, model, rank, --help), run in-process: what each prints and
 * returns. The bin as a process is test/cli/bin.test.ts.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeHub, type FakeHub } from "../fakes/fake-hub.ts";
import { runCli, type CliEnv, type CliResult } from "../helpers/cli.ts";
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
    expect(r.code).toBe(2); // BAD_IMAGE is a bad input file: USAGE in the contract's table
    expect(r.stderr).toMatch(/BAD_IMAGE/);
    await expect(stat(out)).rejects.toThrow();
  });

  it("--max-pixels lowers the cap (the error names the flag) and takes only positive integers", async () => {
    const out = path.join(tmp, "capped.bin");
    const r = await runCli(["preprocess", images[0]!, "--out", out, "--max-pixels", "1000", "--json"]);
    expect(r.code).toBe(2);
    expect(r.json<{ error: { code: string; message: string } }>().error).toMatchObject({
      code: "BAD_IMAGE",
      message: expect.stringMatching(/at most 1000 pixels .* 1024×1024 .* --max-pixels/),
    });
    await expect(stat(out)).rejects.toThrow();
    for (const bad of ["0", "-5", "1.5", "lots"]) {
      const b = await runCli(["preprocess", images[0]!, "--out", out, "--max-pixels", bad]);
      expect(b.code).toBe(2);
      expect(b.stderr).toMatch(/Expected a positive integer number of pixels/);
    }
    expect((await runCli(["preprocess", images[0]!, "--out", out, "--max-pixels", "1_048_576"])).code).toBe(0);
  });

  it("a 10240×7168 upscale (73 MP, which PIL opens without a warning) passes the default cap; --max-pixels refuses it", async () => {
    const upscale = path.join(sharedDir, "cases/upscaled_73mp_1bit.png");
    const r = await runCli(["preprocess", upscale, "--out", path.join(tmp, "up.bin"), "--max-pixels", "73400319", "--json"]);
    expect(r.code).toBe(2);
    expect(r.json<{ error: { message: string } }>().error.message).toMatch(/10240×7168 = 73\.4 megapixels; .*--max-pixels/);
    // The default: the header check passes and the whole image decodes (the resize is left out: seconds of CPU).
    const { decodeImage } = await import("@pickrank/core");
    const d = await decodeImage(upscale);
    expect([d.width, d.height]).toEqual([10240, 7168]);
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

  it("--dtype other than fp32/fp16/int8 is a usage error", async () => {
    const r = await runCli(["model", "convert", tinyClipDir, "--out", path.join(tmp, "x"), "--dtype", "bf16"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Expected fp32, fp16 or int8 but received "bf16"/);
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

  it("a missing image file is NOT_FOUND (exit 2) naming it, before any model loads", async () => {
    const r = await runCli(["rank", "--model", "/nonexistent/model", "--prompt", "x", "--json", images[0]!, path.join(tmp, "nope.png")]);
    expect(r.code).toBe(2);
    expect(r.json<{ error: { code: string; message: string } }>().error).toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining(path.join(tmp, "nope.png")),
    });
  });

  it("an empty or blank --prompt is BAD_INPUT (exit 2), as best-of has it", async () => {
    for (const prompt of ["", "   "]) {
      const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", prompt, "--json", images[0]!]);
      expect(r.code).toBe(2);
      expect(r.json<{ error: { code: string; message: string } }>().error).toMatchObject({
        code: "BAD_INPUT",
        message: expect.stringContaining("Expected a non-empty prompt for --prompt"),
      });
    }
  });

  it("one truncated PNG in a folder: the others are scored, the bad one listed with its error, exit 3 (PARTIAL)", async () => {
    const dir = path.join(tmp, "folder-partial");
    await mkdir(dir, { recursive: true });
    for (const [i, n] of ["a.png", "c.jpg", "d.png"].entries()) await copyFile(images[i]!, path.join(dir, n));
    const png = await readFile(images[0]!);
    await writeFile(path.join(dir, "b-truncated.png"), png.subarray(0, Math.floor(png.length / 3)));
    const r = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", dir]);
    expect(r.code, r.stderr).toBe(3);
    type Out = {
      results: { file: string; score: number; prob: number; rank: number }[];
      failed: { file: string; error: { code: string; message: string } }[];
    };
    const j = r.json<Out>();
    expect(j.results.map((x) => path.basename(x.file)).sort()).toEqual(["a.png", "c.jpg", "d.png"]);
    expect(j.results.map((x) => x.rank)).toEqual([1, 2, 3]);
    expect(j.results.reduce((a, x) => a + x.prob, 0)).toBeCloseTo(1, 5);
    expect(j.failed).toEqual([
      {
        file: path.join(dir, "b-truncated.png"),
        error: expect.objectContaining({ code: "BAD_IMAGE", message: expect.stringContaining("b-truncated.png") }),
      },
    ]);
    // The same scores as the good files alone.
    const rank = (...args: string[]) => runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", ...args]);
    const good = await rank("--json", ...j.results.map((x) => x.file));
    expect(good.code).toBe(0);
    expect(good.json<Out>().results).toEqual(j.results);
    expect(r.stderr).toMatch(/scored 3 of 4 images; 1 could not be read .*\[PARTIAL\]/);
    // People: the table, then the file that was not scored with its error.
    const t = await runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", dir]);
    expect(t.code).toBe(3);
    expect(t.stdout).toMatch(/not scored \(1\):[\s\S]*b-truncated\.png\s+BAD_IMAGE: Expected a complete, decodable image/);
  });

  it("--max-pixels applies to rank: an image over it is listed, the rest scored (exit 3); none scored: exit 2", async () => {
    const rank = (...args: string[]) => runCli(["rank", "--model", model, "--device", "cpu", "--prompt", "a cat", "--json", ...args]);
    const r = await rank("--max-pixels", "600000", ...images);
    expect(r.code, r.stderr).toBe(3);
    const j = r.json<{ results: { file: string }[]; failed: { file: string; error: { code: string; message: string } }[] }>();
    expect(j.results.map((x) => x.file).sort()).toEqual([images[1]!, images[2]!].sort());
    expect(j.failed.map((f) => [f.file, f.error.code])).toEqual([[images[0]!, "BAD_IMAGE"]]);
    expect(j.failed[0]!.error.message).toMatch(/--max-pixels/);
    const none = await rank("--max-pixels", "1000", ...images);
    expect(none.code).toBe(2);
    expect(none.json<{ error: { code: string; message: string } }>().error).toMatchObject({
      code: "BAD_IMAGE",
      message: expect.stringContaining("None of the 3 images could be scored"),
    });
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
    expect(
      byFolder
        .json<Out>()
        .results.map((x) => x.file)
        .sort(),
    ).toEqual(files.sort());
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

describe("missing input files are NOT_FOUND (exit 2), like malformed ones, in every command that reads them", () => {
  const missing = "/nonexistent/pickrank-input";
  const cases: [string, string[]][] = [
    ["tokenize --tokenizer", ["tokenize", "--tokenizer", missing, "--json", "x"]],
    ["model convert <hf-dir>", ["model", "convert", missing, "--out", "/nonexistent/out", "--json"]],
    ["preprocess <image>", ["preprocess", `${missing}.png`, "--out", "/nonexistent/out.bin", "--json"]],
    ["rank <image>", ["rank", "--prompt", "x", "--json", `${missing}.png`]],
  ];
  for (const [name, args] of cases) {
    it(name, async () => {
      const r = await runCli(args);
      expect(r.code).toBe(2);
      expect(r.json<{ error: { code: string } }>().error.code).toBe("NOT_FOUND");
      expect(r.stderr).toContain(missing);
    });
  }
  it("model convert --tokenizer and rank --model", async () => {
    const convert = await runCli(["model", "convert", tinyClipDir, "--out", path.join(tmp, "nf-out"), "--tokenizer", missing, "--json"]);
    expect(convert.code).toBe(2);
    expect(convert.json<{ error: { code: string; details: { option: string } } }>().error).toMatchObject({
      code: "NOT_FOUND",
      details: { option: "--tokenizer" },
    });
    const rank = await runCli(["rank", "--model", missing, "--prompt", "x", "--json", images[0]!]);
    expect(rank.code).toBe(2);
    const error = rank.json<{ error: { code: string; details: { option: string } } }>().error;
    expect(error).toMatchObject({ code: "NOT_FOUND", details: { option: "--model" } });
  });
  it("a folder that is not a tokenizer stays BAD_TOKENIZER (exit 1)", async () => {
    const r = await runCli(["tokenize", "--tokenizer", tmp, "--json", "x"]);
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string } }>().error.code).toBe("BAD_TOKENIZER");
  });
});

describe("pickrank --help", () => {
  it("lists the commands", async () => {
    const r = await runCli(["--help"]);
    expect(r.code).toBe(0);
    for (const c of ["tokenize", "preprocess", "model", "rank", "best-of"]) expect(r.stdout).toContain(c);
  });

  it("each command has its own help", async () => {
    const r = await runCli(["rank", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--device");
  });
});

describe("pickrank model pull / list / prune (fake hub, temp cache)", () => {
  let hub: FakeHub;
  let env: CliEnv;
  let first: CliResult;
  type Pulled = { dir: string; cached: boolean; manifest: { source: { repo: string; revision: string } } };

  beforeAll(async () => {
    hub = await startFakeHub();
    env = { HF_ENDPOINT: hub.url, PICKRANK_CACHE: path.join(tmp, "cache"), HF_TOKEN: "", HF_HUB_DISABLE_IMPLICIT_TOKEN: "1" };
    first = await runCli(["model", "pull", "--json"], { env });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it("pull downloads, converts and prints the model folder", async () => {
    expect(first.code, first.stderr).toBe(0);
    const j = first.json<Pulled>();
    expect(j.cached).toBe(false);
    expect(j.manifest.source.repo).toBe("yuvalkirstain/PickScore_v1");
    await stat(path.join(j.dir, "pickrank.json"));
  });

  it("a second pull is instant: the cached folder, no request to the hub", async () => {
    const seen = hub.requests.length;
    const second = await runCli(["model", "pull"], { env });
    expect(second.code).toBe(0);
    expect(second.stdout.trim()).toBe(first.json<Pulled>().dir);
    expect(hub.requests.length).toBe(seen);
  });

  it("list shows the converted model with its size", async () => {
    const list = await runCli(["model", "list", "--json"], { env });
    expect(list.code, list.stderr).toBe(0);
    expect(list.json<{ dir: string }[]>().map((m) => m.dir)).toEqual([first.json<Pulled>().dir]);
    expect(list.json<{ bytes: number }[]>()[0]!.bytes).toBeGreaterThan(0);
  });

  it("prune frees the downloaded checkpoint, then finds nothing more", async () => {
    const prune = await runCli(["model", "prune", "--json"], { env });
    expect(prune.code, prune.stderr).toBe(0);
    const pr = prune.json<{ removed: { path: string; kind: string }[]; freedBytes: number }>();
    expect(pr.removed.map((x) => x.kind)).toEqual(["checkpoint"]);
    expect(pr.removed[0]!.path).toContain(first.json<Pulled>().manifest.source.revision);
    expect(pr.freedBytes).toBeGreaterThan(0);
    const again = await runCli(["model", "prune"], { env });
    expect(again.stdout).toContain("Nothing to prune in ");
  });

  it("rank without --model uses the cached model (still there after prune)", async () => {
    const r = await runCli(["rank", "--device", "cpu", "--prompt", "a cat", "--json", images[0]!], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.json<{ results: unknown[] }>().results).toHaveLength(1);
  });

  it("an unreachable HF_ENDPOINT fails with DOWNLOAD_FAILED naming it", async () => {
    const port = await closedPort();
    const env2 = { HF_ENDPOINT: `http://127.0.0.1:${port}`, PICKRANK_CACHE: path.join(tmp, "cache2") };
    const r = await runCli(["model", "pull", "--json"], { env: env2 });
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string; message: string } }>().error.code).toBe("DOWNLOAD_FAILED");
    expect(r.stderr).toContain(`127.0.0.1:${port}`);
  });

  it("a reserved port in HF_ENDPOINT fails at once, saying fetch refuses it", async () => {
    const env3 = { HF_ENDPOINT: "http://127.0.0.1:9", PICKRANK_CACHE: path.join(tmp, "cache3") };
    const r = await runCli(["model", "pull", "--json"], { env: env3 });
    expect(r.code).toBe(1);
    expect(r.json<{ error: { code: string; message: string } }>().error.message).toMatch(/fetch refuses port 9 \(a reserved port\)/);
  });
});

/**
 * What the output folder records about each candidate: the text chunks before the image data (where
 * Pillow's Image.open(f).info, and so A1111's "PNG info", reads them), the settings the backend
 * reported (result.json, the A1111 infotext), the ComfyUI API prompt as the `prompt` chunk, the
 * scoring prompt, and the work folder kept for re-selection.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Backend, CandidateMeta, GenerateRequest, Generated } from "@pickrank/contract";
import {
  bestOf,
  encodePngChunks,
  formatProb,
  formatScore,
  readPngChunks,
  readPngText,
  serializeResult,
  setPngText,
  textChunk,
  type BestOfResult,
} from "@pickrank/selector";
import { MemoryBackend, renderSeed } from "../helpers/memory-backend.ts";
import { testScorer } from "./scorer.ts";

const run = promisify(execFile);

let scorer: Awaited<ReturnType<typeof testScorer>>;
let tmp: string;

beforeAll(async () => {
  scorer = await testScorer();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-output-meta-"));
});
afterAll(async () => {
  await scorer.dispose();
  await rm(tmp, { recursive: true, force: true });
});

/** MemoryBackend's candidates with the CandidateMeta a real backend attaches (and, optionally, its own chunks in the PNG). */
class MetaBackend implements Backend {
  readonly inner: MemoryBackend;
  readonly id = "memory@local";
  readonly kind = "memory";
  readonly maxSeed = Number.MAX_SAFE_INTEGER;
  constructor(
    private readonly meta: (seed: number, req: GenerateRequest) => CandidateMeta,
    private readonly serverChunks?: (seed: number) => Record<string, string>,
  ) {
    this.inner = new MemoryBackend();
  }
  fingerprint() {
    return this.inner.fingerprint();
  }
  check() {
    return this.inner.check();
  }
  close() {
    return this.inner.close();
  }
  async *generate(req: GenerateRequest): AsyncIterable<Generated> {
    for await (const g of this.inner.generate(req)) {
      if (!g.ok) {
        yield g;
        continue;
      }
      const image = this.serverChunks ? setPngText(g.image, this.serverChunks(g.seed)) : g.image;
      yield { ...g, image, meta: this.meta(g.seed, req) };
    }
  }
}

/** The API prompt a ComfyUI backend queues for one seed (checkpoint in a folder, non-ASCII text). */
function comfyPrompt(seed: number, text: string): Record<string, unknown> {
  return {
    "4": { class_type: "CheckpointLoaderSimple", inputs: { ckpt_name: "SDXL/juggernautXL_v9.safetensors" } },
    "6": { class_type: "CLIPTextEncode", inputs: { text, clip: ["4", 1] } },
    "7": { class_type: "CLIPTextEncode", inputs: { text: "blurry, lowres", clip: ["4", 1] } },
    "3": { class_type: "KSampler", inputs: { seed, steps: 30, cfg: 6.5, sampler_name: "dpmpp_2m", scheduler: "karras", model: ["4", 0] } },
  };
}

const comfySettings = {
  checkpoint: "SDXL/juggernautXL_v9.safetensors",
  steps: 30,
  cfgScale: 6.5,
  sampler: "dpmpp_2m",
  scheduler: "karras",
  width: 64,
  height: 64,
  negativePrompt: "blurry, lowres",
};

function textChunkOrder(png: Buffer): { firstIdat: number; textAt: number[] } {
  const types = readPngChunks(png).map((c) => c.type);
  return { firstIdat: types.indexOf("IDAT"), textAt: types.flatMap((t, i) => (t === "tEXt" || t === "iTXt" || t === "zTXt" ? [i] : [])) };
}

/** A python3 that imports PIL: PICKRANK_PYTHON, python3, then Debian's /usr/bin/python3 (python3-pil). */
async function pillowPython(): Promise<string | undefined> {
  for (const py of [process.env["PICKRANK_PYTHON"], "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    try {
      await run(py, ["-c", "import PIL.Image"]);
      return py;
    } catch {
      // not this one
    }
  }
  return undefined;
}
const python = await pillowPython();

describe("PNG text chunks sit before the image data", () => {
  it("setPngText moves text chunks a PNG had after IDAT to before it, and adds its own there", async () => {
    const base = await renderSeed(1, 20, 64, "png");
    const chunks = readPngChunks(base).filter((c) => c.type !== "tEXt" && c.type !== "iTXt");
    const iend = chunks.pop()!;
    // A text chunk after the image data, as some writers leave it.
    const late = encodePngChunks([...chunks, textChunk("Software", "some writer"), iend]);
    expect(textChunkOrder(late).textAt[0]).toBeGreaterThan(textChunkOrder(late).firstIdat);
    const out = setPngText(late, { parameters: "a cat\nSteps: 20", pickrank: "{}", uni: "猫" });
    const order = textChunkOrder(out);
    expect(order.textAt).toHaveLength(4);
    expect(Math.max(...order.textAt)).toBeLessThan(order.firstIdat);
    expect(readPngText(out)).toEqual({ Software: "some writer", parameters: "a cat\nSteps: 20", pickrank: "{}", uni: "猫" });
    // The image data itself is untouched.
    const idat = (b: Buffer) =>
      Buffer.concat(
        readPngChunks(b)
          .filter((c) => c.type === "IDAT")
          .map((c) => c.data),
      );
    expect(idat(out).equals(idat(base))).toBe(true);
  });

  it("BAD CALL - setPngText on a PNG without IDAT says BAD_IMAGE", () => {
    const noData = encodePngChunks([
      { type: "IHDR", data: Buffer.alloc(13) },
      { type: "IEND", data: Buffer.alloc(0) },
    ]);
    expect(() => setPngText(noData, { a: "b" })).toThrow(/Expected at least one IDAT chunk/);
  });

  it.skipIf(!python && !process.env["CI"])(
    "Pillow's Image.open(f).info, without load(), shows every chunk of a saved candidate" +
      (python ? "" : " (skipped: no python3 with PIL here; Debian python3-pil, which .ci/run installs)"),
    async () => {
      if (!python) throw new Error("Expected a python3 with PIL (Debian python3-pil, installed by .ci/run) in CI but none was found");
      const out = path.join(tmp, "pillow");
      const prompt = "(a lighthouse:1.2), dusk, 灯台";
      const backend = new MetaBackend((seed) => ({
        settings: comfySettings,
        comfyPrompt: comfyPrompt(seed, prompt),
        promptId: `p-${seed}`,
      }));
      const r = await bestOf({ prompt, n: 3, seed: 11, backend, scorer, top: 2, out });
      const files = r.top.map((c) => c.file!);
      // Control: the same chunks after IDAT are invisible to Image.open(f).info (what this change fixes).
      const first = await readFile(files[0]!);
      const parts = readPngChunks(first);
      const late = path.join(tmp, "late.png");
      await writeFile(
        late,
        encodePngChunks([
          ...parts.filter((c) => c.type !== "tEXt" && c.type !== "iTXt" && c.type !== "IEND"),
          ...parts.filter((c) => c.type === "tEXt" || c.type === "iTXt"),
          parts.at(-1)!,
        ]),
      );
      const script = [
        "import json, sys",
        "from PIL import Image",
        "out = {}",
        "for f in sys.argv[1:]:",
        "    im = Image.open(f)",
        "    out[f] = {k: v for k, v in im.info.items() if isinstance(v, str)}",
        "print(json.dumps(out))",
      ].join("\n");
      const { stdout } = await run(python, ["-c", script, ...files, late]);
      const info = JSON.parse(stdout) as Record<string, Record<string, string>>;
      for (const f of files) {
        expect(info[f]).toEqual(readPngText(await readFile(f)));
        expect(Object.keys(info[f]!).sort()).toEqual(["parameters", "pickrank", "prompt"]);
        expect(info[f]!["parameters"]!.split("\n")[0]).toBe(prompt);
      }
      expect(info[late]).toEqual({});
    },
  );
});

describe("a ComfyUI candidate's settings and prompt", () => {
  it("result.json, the infotext and the prompt chunk carry what the backend rendered; the journal keeps it for a resume", async () => {
    const out = path.join(tmp, "comfy");
    const prompt = "(a lighthouse:1.2), dusk <lora:coast:0.6>";
    const backend = new MetaBackend((seed) => ({
      settings: comfySettings,
      comfyPrompt: comfyPrompt(seed, "a lighthouse"),
      promptId: `p-${seed}`,
    }));
    const r = await bestOf({ prompt, n: 4, seed: 21, backend, scorer, top: 2, out });
    expect(r.scorePrompt).toBe("a lighthouse, dusk");
    expect(r.params).toEqual({});
    const best = r.top[0]!;
    const png = await readFile(best.file!);
    const text = readPngText(png);
    expect(text["parameters"]).toBe(
      `${prompt}\nNegative prompt: blurry, lowres\n` +
        `Steps: 30, Sampler: dpmpp_2m, Schedule type: karras, CFG scale: 6.5, Seed: ${best.seed}, Size: 64x64, Model: juggernautXL_v9, ` +
        `PickScore: ${best.score.toFixed(3)}, PickScore prob: ${best.prob.toFixed(4)}, PickScore rank: 1/4, ` +
        `PickScore model: ${path.basename(r.model.dir)}, ` +
        `PickScore prompt: "a lighthouse, dusk"`,
    );
    // The API prompt as queued, with this candidate's seed, ASCII JSON in a tEXt chunk (as ComfyUI writes it).
    expect(JSON.parse(text["prompt"]!)).toEqual(comfyPrompt(best.seed, "a lighthouse"));
    const promptChunk = readPngChunks(png).find((c) => c.data.toString("latin1").startsWith("prompt\0"))!;
    expect(promptChunk.type).toBe("tEXt");
    const order = textChunkOrder(png);
    expect(Math.max(...order.textAt)).toBeLessThan(order.firstIdat);
    const pr = JSON.parse(text["pickrank"]!);
    expect(pr).toMatchObject({ scorePrompt: "a lighthouse, dusk", settings: comfySettings, promptId: `p-${best.seed}` });
    // result.json: every candidate's settings, no API prompt (one per candidate would swamp it).
    const json = JSON.parse(await readFile(path.join(out, "result.json"), "utf8"));
    expect(json).toEqual(serializeResult(r));
    expect(json.scorePrompt).toBe("a lighthouse, dusk");
    for (const c of json.ranked) expect(c.meta).toEqual({ settings: comfySettings, promptId: `p-${c.seed}` });
    expect(JSON.stringify(json)).not.toContain("CheckpointLoaderSimple");

    // A re-run from the journal (nothing rendered) still knows each candidate's settings and prompt.
    const again = new MemoryBackend();
    const r2 = await bestOf({ prompt, n: 4, seed: 21, backend: again, scorer, top: 3, out });
    expect(again.requests).toHaveLength(0);
    expect(r2.ranked.every((c) => c.reused && c.meta?.settings?.steps === 30)).toBe(true);
    const third = readPngText(await readFile(r2.top[2]!.file!));
    expect(JSON.parse(third["prompt"]!)).toEqual(comfyPrompt(r2.top[2]!.seed, "a lighthouse"));
    expect(third["parameters"]).toContain("Model: juggernautXL_v9");
  });

  it("keeps the prompt and workflow chunks the server embedded instead of adding a second prompt", async () => {
    const out = path.join(tmp, "comfy-embedded");
    const server = (seed: number) => ({ prompt: JSON.stringify({ server: seed }), workflow: '{"nodes":[]}' });
    const backend = new MetaBackend((seed) => ({ settings: comfySettings, comfyPrompt: comfyPrompt(seed, "x") }), server);
    const r = await bestOf({ prompt: "a fox", n: 2, seed: 5, backend, scorer, out });
    const png = await readFile(r.best.file!);
    const keywords = readPngChunks(png).flatMap((c) =>
      c.type === "tEXt" || c.type === "iTXt" ? [c.data.toString("latin1", 0, c.data.indexOf(0))] : [],
    );
    expect(keywords.sort()).toEqual(["parameters", "pickrank", "prompt", "workflow"]);
    expect(readPngText(png)).toMatchObject({ prompt: JSON.stringify({ server: r.best.seed }), workflow: '{"nodes":[]}' });
  });

  it("without settings from the backend, the infotext falls back to the requested params, and a draft to the draft params", async () => {
    const out = path.join(tmp, "plain");
    const r = await bestOf({
      prompt: "p",
      n: 3,
      seed: 2,
      backend: new MemoryBackend(),
      scorer,
      params: { steps: 20, cfgScale: 7, sampler: "Euler a", width: 64, height: 64 },
      refine: { draft: { steps: 4 }, k: 2 },
      out: { dir: out, keep: "all" },
    });
    const fin = readPngText(await readFile(r.best.file!))["parameters"]!;
    expect(fin).toBe(
      `p\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: ${r.best.seed}, Size: 64x64, PickScore: ${formatScore(r.best.score)}, ` +
        `PickScore prob: ${formatProb(r.best.prob)}, PickScore rank: 1/2, PickScore model: ${path.basename(r.model.dir)}`,
    );
    const d = r.refine!.drafts[0]!;
    expect(readPngText(await readFile(d.file!))["parameters"]).toMatch(/^p\nSteps: 4, Sampler: Euler a, .*PickScore rank: 1\/3,/);
  });
});

describe("an Automatic1111 candidate's infotext", () => {
  it("is the server's own text with the PickScore fields appended to its last line", async () => {
    const out = path.join(tmp, "a1111");
    const own = (seed: number) =>
      `a cat\nNegative prompt: ugly\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: ${seed}, Size: 64x64, ` +
      "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1";
    const backend = new MetaBackend((seed) => ({
      infotext: own(seed),
      settings: { steps: 20, sampler: "Euler a", other: { "Model hash": "6ce0161689" } },
    }));
    const r = await bestOf({ prompt: "a cat", n: 2, seed: 40, backend, scorer, params: { steps: 20 }, out });
    const c = r.best;
    expect(readPngText(await readFile(c.file!))["parameters"]).toBe(
      `${own(c.seed)}, PickScore: ${formatScore(c.score)}, PickScore prob: ${formatProb(c.prob)}, PickScore rank: 1/2, ` +
        `PickScore model: ${path.basename(r.model.dir)}`,
    );
  });
});

describe("the scoring prompt in bestOf", () => {
  it("scores against the cleaned prompt by default, the given text, or the raw prompt", async () => {
    const prompt = "(red fox:1.3), snow, <lora:winter:0.8> BREAK forest";
    const direct = async (text: string, images: Buffer[]) =>
      scorer.scoreEmbeddings(await scorer.embedText(text), await scorer.embedImages(images));
    const byIndex = (r: BestOfResult) => [...r.ranked].sort((a, b) => a.index - b.index);
    for (const [opts, want] of [
      [{}, "red fox, snow, forest"],
      [{ scorePrompt: "a fox in the snow" }, "a fox in the snow"],
      [{ scoreRawPrompt: true }, prompt],
    ] as const) {
      const r = await bestOf({ prompt, n: 3, seed: 3, backend: new MemoryBackend(), scorer, ...opts });
      expect(r.scorePrompt).toBe(want);
      const cands = byIndex(r);
      const d = await direct(
        want,
        cands.map((c) => c.image),
      );
      cands.forEach((c, i) => expect(c.score).toBeCloseTo(d[i]!.score, 5));
    }
    // The cleaned and the raw text really score differently (else the comparison above proves nothing).
    const raw = await direct(prompt, [await renderSeed(3, 20, 64, "png")]);
    const clean = await direct("red fox, snow, forest", [await renderSeed(3, 20, 64, "png")]);
    expect(Math.abs(raw[0]!.score - clean[0]!.score)).toBeGreaterThan(1e-4);
  });

  it("several prompts take one scoring prompt each; a single one for several is refused before anything renders", async () => {
    const b = await bestOf({
      prompts: ["(a:1.2) cat", "a dog"],
      n: 2,
      seed: 1,
      backend: new MemoryBackend(),
      scorer,
      scorePrompt: ["kitten", "puppy"],
    });
    expect(b.runs.map((r) => r.scorePrompt)).toEqual(["kitten", "puppy"]);
    const backend = new MemoryBackend();
    await expect(bestOf({ prompts: ["a", "b"], n: 2, backend, scorer, scorePrompt: "x" })).rejects.toMatchObject({ code: "BAD_INPUT" });
    await expect(bestOf({ prompts: ["a", "b"], n: 2, backend, scorer, scorePrompt: ["x"] })).rejects.toThrow(
      /an array of 2 scoring prompts/,
    );
    await expect(bestOf({ prompt: "a", n: 2, backend, scorer, scorePrompt: "x", scoreRawPrompt: true })).rejects.toMatchObject({
      code: "BAD_INPUT",
    });
    expect(backend.requests).toHaveLength(0);
  });

  it("warns, with the count, when the scoring prompt is longer than CLIP reads", async () => {
    const prompt = Array.from({ length: 90 }, (_, i) => `word${i}`).join(" ");
    const tokens = scorer.countTokens(prompt);
    expect(tokens).toBeGreaterThan(75);
    const r = await bestOf({ prompt, n: 2, seed: 1, backend: new MemoryBackend(), scorer });
    expect(r.warnings.filter((w) => w.includes("CLIP tokens"))).toEqual([
      expect.stringContaining(`is ${tokens} CLIP tokens but PickScore reads 75 (77 with start and end): ${tokens - 75} are cut`),
    ]);
    const short = await bestOf({ prompt: "a cat", n: 2, seed: 1, backend: new MemoryBackend(), scorer });
    expect(short.warnings).toEqual([]);
  });
});

describe("the work folder after a run", () => {
  it("keeps every rendered candidate for re-selection and reports how many and how large", async () => {
    const out = path.join(tmp, "work");
    const r = await bestOf({ prompt: "p", n: 5, seed: 1, backend: new MemoryBackend(), scorer, top: 1, out });
    const dir = path.join(out, ".pickrank", "work");
    const names = await readdir(dir);
    expect(names).toHaveLength(5);
    const bytes = (await Promise.all(names.map((n) => stat(path.join(dir, n))))).reduce((s, st) => s + st.size, 0);
    expect(r.out!.work).toEqual({ dir, files: 5, bytes });
    // That is what lets another top re-select with nothing rendered.
    const again = new MemoryBackend();
    const r2 = await bestOf({ prompt: "p", n: 5, seed: 1, backend: again, scorer, top: 3, out });
    expect(again.requests).toHaveLength(0);
    expect(r2.out!.files).toHaveLength(3);
  });
});

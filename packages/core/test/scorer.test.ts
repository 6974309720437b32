import { readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer, type RankedImage } from "../src/index.ts";
import { softmax } from "../src/scorer.ts";
import { referenceDir } from "../../../test/helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import { loadReference, maxRelErr, type Reference } from "./convert-helpers.ts";
import { parityBound } from "./tolerances.ts";

const here = path.dirname(fileURLToPath(import.meta.url));
let ref: Reference;
let scorer: Scorer;

async function pixelValues(image: string): Promise<Float32Array> {
  const buf = await readFile(path.join(referenceDir, "pixel_values", `${path.basename(image)}.bin`));
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

beforeAll(async () => {
  ref = await loadReference();
  scorer = await Scorer.create({ model: await tinyModel(), device: "cpu", batchSize: 4 });
});

afterAll(async () => {
  await scorer?.dispose();
  await removeTinyModels();
});

/** Max relative error of each output of `s` against the reference (tolerances.ts measures them whole). */
async function parityErrors(s: Scorer): Promise<Record<string, number>> {
  const pixels = await Promise.all(ref.images.map(pixelValues));
  const imageEmbeds = await s.embedPixels(pixels);
  const texts = await Promise.all(ref.prompts.map((p) => s.embedText(p)));
  // Each output compared whole, as tolerances.ts measures: logits [image][prompt], probs [prompt][image].
  const scored = texts.map((t) => s.scoreEmbeddings(t, imageEmbeds));
  return {
    image_embeds: maxRelErr(
      imageEmbeds.flatMap((e) => [...e]),
      ref.image_embeds.flat(),
    ),
    text_embeds: maxRelErr(
      texts.flatMap((e) => [...e]),
      ref.text_embeds.flat(),
    ),
    logits_per_image: maxRelErr(
      ref.images.flatMap((_, i) => scored.map((x) => x[i]!.score)),
      ref.logits_per_image.flat(),
    ),
    probs_over_images_per_prompt: maxRelErr(
      scored.flatMap((x) => x.map((y) => y.prob)),
      ref.probs_over_images_per_prompt.flat(),
    ),
  };
}

describe("Scorer against the Python reference (fp32, cpu)", () => {
  it("text and image embeddings, scores and probabilities within the fp32 bounds of tolerances.ts", async () => {
    const errors = await parityErrors(scorer);
    console.log("Scorer (cpu, fp32) max relative error per output:", JSON.stringify(errors));
    for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("prepackWeights false (weights packed per run, as `rank` of a few images does): the same fp32 bounds", async () => {
    const unpacked = await Scorer.create({ model: await tinyModel(), device: "cpu", batchSize: 4, prepackWeights: false });
    try {
      const errors = await parityErrors(unpacked);
      console.log("Scorer (cpu, fp32, prepackWeights false) max relative error per output:", JSON.stringify(errors));
      for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp32", k));
    } finally {
      await unpacked.dispose();
    }
  });

  it("rank from image files gives the reference's order, scores and probabilities (bit-exact preprocessing)", async () => {
    const files = ref.images.map((f) => path.join(referenceDir, f));
    const byPrompt: RankedImage[][] = [];
    for (let p = 0; p < ref.prompts.length; p++) {
      const ranked = await scorer.rank(ref.prompts[p]!, files);
      const refScores = ref.images.map((_, i) => ref.logits_per_image[i]![p]!);
      const refOrder = refScores
        .map((s, i) => [s, i] as const)
        .sort((a, b) => b[0] - a[0])
        .map(([, i]) => i);
      expect(
        ranked.map((r) => r.index),
        `prompt ${p}`,
      ).toEqual(refOrder);
      expect(ranked.map((r) => r.rank)).toEqual(files.map((_, i) => i + 1));
      byPrompt.push([...ranked].sort((a, b) => a.index - b.index));
    }
    const logits = maxRelErr(
      ref.images.flatMap((_, i) => byPrompt.map((r) => r[i]!.score)),
      ref.logits_per_image.flat(),
    );
    const probs = maxRelErr(
      byPrompt.flatMap((r) => r.map((x) => x.prob)),
      ref.probs_over_images_per_prompt.flat(),
    );
    const measured = { logits_per_image: logits, probs_over_images_per_prompt: probs };
    console.log("Scorer.rank from files (cpu, fp32) max relative error:", JSON.stringify(measured));
    expect(logits).toBeLessThan(parityBound("fp32", "logits_per_image"));
    expect(probs).toBeLessThan(parityBound("fp32", "probs_over_images_per_prompt"));
  });

  it("score keeps input order; Buffers and paths give the same scores", async () => {
    const files = ref.images.slice(0, 3).map((f) => path.join(referenceDir, f));
    const buffers = await Promise.all(files.map((f) => readFile(f)));
    const a = await scorer.score("a photo", files);
    const b = await scorer.score("a photo", buffers);
    expect(a.map((s) => s.index)).toEqual([0, 1, 2]);
    // The same bytes either way: the same numbers, exactly.
    expect(b).toEqual(a);
  });

  it("reports progress after each device batch, for files and for pixels", async () => {
    const files = ref.images.map((f) => path.join(referenceDir, f)); // 6 images
    const small = await Scorer.create({ model: await tinyModel(), device: "cpu", preprocessWorkers: 0, batchSize: 4 });
    try {
      const seen: [number, number][] = [];
      await small.embedImages(files, { onProgress: (d, t) => seen.push([d, t]) });
      expect(seen).toEqual([
        [4, 6],
        [6, 6],
      ]);
      const px: [number, number][] = [];
      const pixels = await Promise.all(ref.images.slice(0, 5).map((f) => pixelValues(f)));
      await small.embedPixels(pixels, { onProgress: (d, t) => px.push([d, t]) });
      expect(px).toEqual([
        [4, 5],
        [5, 5],
      ]);
    } finally {
      await small.dispose();
    }
  });

  it("worker-thread preprocessing gives the same embeddings as the main thread, and names bad images alike", async () => {
    const files = ref.images.map((f) => path.join(referenceDir, f));
    const pooled = await Scorer.create({ model: await tinyModel(), device: "cpu", preprocessWorkers: 2 });
    const inline = await Scorer.create({ model: await tinyModel(), device: "cpu", preprocessWorkers: 0 });
    try {
      const [a, b] = await Promise.all([pooled.embedImages(files), inline.embedImages(files)]);
      a.forEach((e, i) => expect(Array.from(e)).toEqual(Array.from(b[i]!)));
      await expect(pooled.embedImages([Buffer.from("nope")])).rejects.toMatchObject({
        code: "BAD_IMAGE",
        message: expect.stringContaining("#0"),
      });
      // the pool survives a bad image
      expect(await pooled.embedImages([await readFile(files[0]!)])).toHaveLength(1);
    } finally {
      await Promise.all([pooled.dispose(), inline.dispose()]);
    }
  });

  it("caches text embeddings per prompt", async () => {
    const a = scorer.embedText("a cached prompt");
    expect(scorer.embedText("a cached prompt")).toBe(a);
  });

  it("softmax is stable for large scores", () => {
    const p = softmax([1000, 1000, 999]);
    expect(p.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 12);
    expect(p[0]).toBeCloseTo(p[1]!, 12);
  });
});

describe("Scorer bad inputs", () => {
  it("score with no images is BAD_INPUT", async () => {
    await expect(scorer.score("x", [])).rejects.toMatchObject({ code: "BAD_INPUT", message: expect.stringContaining("non-empty array") });
  });

  it("a file that is not an image is BAD_IMAGE naming which one", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-sc-"));
    try {
      const bad = path.join(dir, "notes.png");
      await writeFile(bad, "not an image at all");
      const good = path.join(referenceDir, ref.images[0]!);
      await expect(scorer.score("x", [good, bad])).rejects.toMatchObject({ code: "BAD_IMAGE", message: expect.stringContaining("#1 (") });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("embedPixels with a tensor of the wrong size is BAD_INPUT", async () => {
    await expect(scorer.embedPixels([new Float32Array(10)])).rejects.toMatchObject({ code: "BAD_INPUT" });
  });

  it("an aborted signal stops scoring with ABORTED", async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(scorer.score("x", [path.join(referenceDir, ref.images[0]!)], { signal: ac.signal })).rejects.toMatchObject({
      code: "ABORTED",
    });
  });

  it("a disposed scorer refuses work with a clear message", async () => {
    const s = await Scorer.create({ model: await tinyModel(), device: "cpu" });
    await s.dispose();
    await s.dispose(); // idempotent
    expect(() => s.embedText("x")).toThrowError(/disposed/);
    await expect(s.score("x", [path.join(referenceDir, ref.images[0]!)])).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("a missing model folder is NOT_FOUND naming the folder; a folder that is no model is BAD_MODEL", async () => {
    await expect(Scorer.create({ model: "/nonexistent/model", device: "cpu" })).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("/nonexistent/model"),
    });
    await expect(Scorer.create({ model: referenceDir, device: "cpu" })).rejects.toMatchObject({
      code: "BAD_MODEL",
      message: expect.stringContaining("pickrank.json is missing"),
    });
  });

  it("maxPixels: images over it are BAD_IMAGE naming --max-pixels; a bad value is BAD_INPUT", async () => {
    const capped = await Scorer.create({ model: await tinyModel(), device: "cpu", preprocessWorkers: 0, maxPixels: 300 * 200 });
    try {
      const file = path.join(referenceDir, ref.images[0]!);
      const tooLarge = { code: "BAD_IMAGE", message: expect.stringContaining("--max-pixels") };
      await expect(capped.score("x", [file])).rejects.toMatchObject(tooLarge);
    } finally {
      await capped.dispose();
    }
    await expect(Scorer.create({ model: await tinyModel(), device: "cpu", maxPixels: 0 })).rejects.toMatchObject({ code: "BAD_INPUT" });
  });
});

describe("Scorer.rankSettled: one bad file does not stop the others", () => {
  it("scores the good images, lists the bad ones with their error and input index", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-settled-"));
    try {
      const files = ref.images.slice(0, 5).map((f) => path.join(referenceDir, f));
      const png = await readFile(path.join(referenceDir, "images/tiny_64x48.png"));
      const truncated = path.join(dir, "truncated.png");
      await writeFile(truncated, png.subarray(0, Math.floor(png.length / 2)));
      const missing = path.join(dir, "missing.png");
      const inputs = [files[0]!, truncated, files[1]!, files[2]!, missing, files[3]!, files[4]!];
      const { ranked, failed } = await scorer.rankSettled("a photo", inputs); // batch size 4: failures in both batches
      expect(failed.map((f) => [f.index, f.error.code])).toEqual([
        [1, "BAD_IMAGE"],
        [4, "NOT_FOUND"],
      ]);
      expect(failed[0]!.error.message).toContain(truncated);
      // The good ones score exactly as they do alone, and their probabilities sum to 1 among themselves.
      const alone = await scorer.score("a photo", files);
      expect(ranked.map((r) => r.index).sort()).toEqual([0, 2, 3, 5, 6]);
      const fileIndex = [0, -1, 1, 2, -1, 3, 4];
      for (const r of ranked) expect(r.score).toBeCloseTo(alone[fileIndex[r.index]!]!.score, 5);
      expect(ranked.reduce((a, r) => a + r.prob, 0)).toBeCloseTo(1, 6);
      expect(ranked.map((r) => r.rank)).toEqual([1, 2, 3, 4, 5]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("only failures leave nothing ranked; other errors (abort) still throw", async () => {
    const r = await scorer.rankSettled("x", [Buffer.from("nope")]);
    expect(r.ranked).toEqual([]);
    expect(r.failed.map((f) => f.error.code)).toEqual(["BAD_IMAGE"]);
    const ac = new AbortController();
    ac.abort();
    const file = path.join(referenceDir, ref.images[0]!);
    await expect(scorer.rankSettled("x", [file], { signal: ac.signal })).rejects.toMatchObject({ code: "ABORTED" });
  });
});

describe("Scorer on inputs PIL decodes differently from libvips", () => {
  it("a CMYK JPEG scores as PIL's RGB of it (shared/cases/cmyk_swatch.jpg)", async () => {
    const doc = JSON.parse(await readFile(path.join(here, "data/decode/pil-rgb.json"), "utf8")) as {
      fixtures: { file: string; width: number; height: number; rgb: string }[];
    };
    const row = doc.fixtures.find((f) => f.file.endsWith("cmyk_swatch.jpg"))!;
    const pilRgb = new Uint8Array(zlib.inflateSync(Buffer.from(row.rgb, "base64")));
    const [cmyk, pil] = await scorer.score("a photo", [
      path.resolve(here, "../../../../shared/cases/cmyk_swatch.jpg"),
      { data: pilRgb, width: row.width, height: row.height, channels: 3 },
    ]);
    expect(cmyk!.score).toBeCloseTo(pil!.score, 5);
  });
});

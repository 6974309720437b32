import { readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer } from "../src/index.ts";
import { softmax } from "../src/scorer.ts";
import { referenceDir } from "../../../test/helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import { loadReference, maxRelErr, type Reference } from "./convert-helpers.ts";

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

describe("Scorer against the Python reference (fp32, cpu)", () => {
  it("text and image embeddings, scores and probabilities within 1e-4 relative error", async () => {
    const pixels = await Promise.all(ref.images.map(pixelValues));
    const imageEmbeds = await scorer.embedPixels(pixels);
    imageEmbeds.forEach((e, i) => expect(maxRelErr(e, ref.image_embeds[i]!)).toBeLessThan(1e-4));
    for (let p = 0; p < ref.prompts.length; p++) {
      const text = await scorer.embedText(ref.prompts[p]!);
      expect(maxRelErr(text, ref.text_embeds[p]!)).toBeLessThan(1e-4);
      const scored = scorer.scoreEmbeddings(text, imageEmbeds);
      const expectedScores = ref.images.map((_, i) => ref.logits_per_image[i]![p]!);
      expect(maxRelErr(scored.map((s) => s.score), expectedScores)).toBeLessThan(1e-4);
      expect(maxRelErr(scored.map((s) => s.prob), ref.probs_over_images_per_prompt[p]!)).toBeLessThan(1e-4);
    }
  });

  it("rank from image files orders as the reference scores do and numbers ranks 1..n", async () => {
    const files = ref.images.map((f) => path.join(referenceDir, f));
    const prompt = ref.prompts[0]!;
    const ranked = await scorer.rank(prompt, files);
    expect(ranked.map((r) => r.rank)).toEqual(files.map((_, i) => i + 1));
    for (let i = 1; i < ranked.length; i++) expect(ranked[i - 1]!.score).toBeGreaterThanOrEqual(ranked[i]!.score);
    expect(ranked.reduce((a, r) => a + r.prob, 0)).toBeCloseTo(1, 6);
    // Files go through our preprocessing, so scores differ from the reference only by resampler rounding.
    const refScores = ref.images.map((_, i) => ref.logits_per_image[i]![0]!);
    for (const r of ranked) expect(Math.abs(r.score - refScores[r.index]!)).toBeLessThan(0.5);
  });

  it("score keeps input order; Buffers and paths give the same scores", async () => {
    const files = ref.images.slice(0, 3).map((f) => path.join(referenceDir, f));
    const buffers = await Promise.all(files.map((f) => readFile(f)));
    const a = await scorer.score("a photo", files);
    const b = await scorer.score("a photo", buffers);
    expect(a.map((s) => s.index)).toEqual([0, 1, 2]);
    a.forEach((s, i) => expect(s.score).toBeCloseTo(b[i]!.score, 5));
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
      await expect(pooled.embedImages([Buffer.from("nope")])).rejects.toMatchObject({ code: "BAD_IMAGE", message: expect.stringContaining("#0") });
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
    await expect(scorer.score("x", [path.join(referenceDir, ref.images[0]!)], { signal: ac.signal })).rejects.toMatchObject({ code: "ABORTED" });
  });

  it("a disposed scorer refuses work with a clear message", async () => {
    const s = await Scorer.create({ model: await tinyModel(), device: "cpu" });
    await s.dispose();
    await s.dispose(); // idempotent
    expect(() => s.embedText("x")).toThrowError(/disposed/);
    await expect(s.score("x", [path.join(referenceDir, ref.images[0]!)])).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("a missing model folder is BAD_MODEL naming the folder", async () => {
    await expect(Scorer.create({ model: "/nonexistent/model", device: "cpu" })).rejects.toMatchObject({
      code: "BAD_MODEL",
      message: expect.stringContaining("/nonexistent/model"),
    });
  });
});

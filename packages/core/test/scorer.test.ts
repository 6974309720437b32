import { readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer, type RankedImage } from "../src/index.ts";
import { softmax } from "../src/scorer.ts";
import { referenceDir } from "../../../test/helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import { loadReference, maxRelErr, type Reference } from "./convert-helpers.ts";
import { parityBound } from "./tolerances.ts";

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
  it("text and image embeddings, scores and probabilities within the fp32 bounds of tolerances.ts", async () => {
    const pixels = await Promise.all(ref.images.map(pixelValues));
    const imageEmbeds = await scorer.embedPixels(pixels);
    const texts = await Promise.all(ref.prompts.map((p) => scorer.embedText(p)));
    // Each output compared whole, as tolerances.ts measures: logits [image][prompt], probs [prompt][image].
    const scored = texts.map((t) => scorer.scoreEmbeddings(t, imageEmbeds));
    const errors = {
      image_embeds: maxRelErr(imageEmbeds.flatMap((e) => [...e]), ref.image_embeds.flat()),
      text_embeds: maxRelErr(texts.flatMap((e) => [...e]), ref.text_embeds.flat()),
      logits_per_image: maxRelErr(ref.images.flatMap((_, i) => scored.map((s) => s[i]!.score)), ref.logits_per_image.flat()),
      probs_over_images_per_prompt: maxRelErr(scored.flatMap((s) => s.map((x) => x.prob)), ref.probs_over_images_per_prompt.flat()),
    };
    console.log("Scorer (cpu, fp32) max relative error per output:", JSON.stringify(errors));
    for (const [k, v] of Object.entries(errors)) expect(v, k).toBeLessThan(parityBound("fp32", k));
  });

  it("rank from image files gives the reference's order, scores and probabilities (bit-exact preprocessing)", async () => {
    const files = ref.images.map((f) => path.join(referenceDir, f));
    const byPrompt: RankedImage[][] = [];
    for (let p = 0; p < ref.prompts.length; p++) {
      const ranked = await scorer.rank(ref.prompts[p]!, files);
      const refScores = ref.images.map((_, i) => ref.logits_per_image[i]![p]!);
      const refOrder = refScores.map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0]).map(([, i]) => i);
      expect(ranked.map((r) => r.index), `prompt ${p}`).toEqual(refOrder);
      expect(ranked.map((r) => r.rank)).toEqual(files.map((_, i) => i + 1));
      byPrompt.push([...ranked].sort((a, b) => a.index - b.index));
    }
    const logits = maxRelErr(ref.images.flatMap((_, i) => byPrompt.map((r) => r[i]!.score)), ref.logits_per_image.flat());
    const probs = maxRelErr(byPrompt.flatMap((r) => r.map((x) => x.prob)), ref.probs_over_images_per_prompt.flat());
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

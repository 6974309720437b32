import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sharp from "sharp";
import type { Scorer } from "@pickrank/core";
import { removeTinyModels } from "../../../test/helpers/tiny-model.ts";
import type { PickrankServer } from "../src/index.ts";
import { blobOf, IMAGE_NAMES, imageBytes, imagePath, postJson, serve, tinyScorer } from "./helpers.ts";

let scorer: Scorer;
let server: PickrankServer;
let url: string;

beforeAll(async () => {
  scorer = await tinyScorer();
  ({ server, url } = await serve(scorer, { maxWaitMs: 2 }));
});

afterAll(async () => {
  await server?.close();
  await scorer?.dispose();
  await removeTinyModels();
});

describe("POST /v1/rank", () => {
  it("base64 images: the numbers of Scorer#rank (pickrank rank) on the same files, best first", async () => {
    const prompt = "a lighthouse at dawn";
    const expected = await scorer.rank(prompt, IMAGE_NAMES.map(imagePath));
    const images = await Promise.all(IMAGE_NAMES.map(async (n) => (await imageBytes(n)).toString("base64")));
    const res = await postJson(`${url}/v1/rank`, { prompt, images });
    expect(res.status).toBe(200);
    expect(res.body.prompt).toBe(prompt);
    expect(res.body.device).toBe("cpu");
    expect(res.body.results.map((r: { index: number }) => r.index)).toEqual(expected.map((r) => r.index));
    // Equal, not close: batching changes which images share a vision run, not the arithmetic (CPU).
    res.body.results.forEach((r: { score: number; prob: number; rank: number }, i: number) => {
      expect(r.rank).toBe(i + 1);
      expect(r.score).toBe(expected[i]!.score);
      expect(r.prob).toBe(expected[i]!.prob);
    });
    expect(res.body.timings.batches).toBeGreaterThanOrEqual(1);
    for (const k of ["preprocessMs", "queuedMs", "inferenceMs", "totalMs"]) expect(res.body.timings[k]).toBeGreaterThanOrEqual(0);
  });

  it("raw RGB and RGBA pixels score as the same pixels encoded as PNG", async () => {
    const prompt = "a red bicycle";
    const rgba = await sharp(imagePath("rgba_512.png")).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const rgb = await sharp(imagePath("photo_768.jpg")).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const pngs = await Promise.all([
      sharp(rgba.data, { raw: { width: rgba.info.width, height: rgba.info.height, channels: 4 } })
        .png()
        .toBuffer(),
      sharp(rgb.data, { raw: { width: rgb.info.width, height: rgb.info.height, channels: 3 } })
        .png()
        .toBuffer(),
    ]);
    const expected = await scorer.score(prompt, pngs);
    const res = await postJson(`${url}/v1/rank`, {
      prompt,
      images: [
        { raw: rgba.data.toString("base64"), width: rgba.info.width, height: rgba.info.height, channels: 4 },
        { raw: rgb.data.toString("base64"), width: rgb.info.width, height: rgb.info.height, channels: 3 },
      ],
    });
    expect(res.status).toBe(200);
    for (const r of res.body.results) expect(r.score).toBeCloseTo(expected[r.index]!.score, 5);
  });

  it("multipart file parts: same numbers, and each result names its file", async () => {
    const prompt = "a cat in a hat";
    const names = IMAGE_NAMES.slice(0, 3);
    const expected = await scorer.rank(prompt, names.map(imagePath));
    const form = new FormData();
    form.set("prompt", prompt);
    for (const n of names) form.append("images", blobOf(await imageBytes(n), n.endsWith(".jpg") ? "image/jpeg" : "image/png"), n);
    const res = await fetch(`${url}/v1/rank`, { method: "POST", body: form });
    const body = (await res.json()) as { results: { index: number; file: string; score: number }[] };
    expect(res.status).toBe(200);
    expect(body.results.map((r) => r.file)).toEqual(expected.map((r) => names[r.index]));
    body.results.forEach((r, i) => expect(r.score).toBeCloseTo(expected[i]!.score, 5));
  });

  it("multipart raw parts (width/height/channels fields) as the plugins send them", async () => {
    const { data, info } = await sharp(imagePath("gray_300x200.png"))
      .removeAlpha()
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    const png = await sharp(data, { raw: { width: info.width, height: info.height, channels: 3 } })
      .png()
      .toBuffer();
    const [expected] = await scorer.score("a gray square", [png]);
    const form = new FormData();
    form.set("prompt", "a gray square");
    form.set("width", String(info.width));
    form.set("height", String(info.height));
    form.set("channels", "3");
    form.append("images", blobOf(data, "application/octet-stream"));
    const res = await fetch(`${url}/v1/rank`, { method: "POST", body: form });
    const body = (await res.json()) as { results: { score: number }[] };
    expect(res.status).toBe(200);
    expect(body.results[0]!.score).toBeCloseTo(expected!.score, 5);
  });

  it("cleanPrompt: scores the prompt without its A1111 syntax, as pickrank rank does by default; absent: as sent", async () => {
    const prompt = "(a red fox:1.2), <lora:fur:0.8>, BREAK [snow|ice]";
    const cleaned = "a red fox, snow ice";
    const images = await Promise.all(IMAGE_NAMES.slice(0, 3).map(async (n) => (await imageBytes(n)).toString("base64")));
    const expected = await scorer.rank(cleaned, IMAGE_NAMES.slice(0, 3).map(imagePath));
    const clean = await postJson(`${url}/v1/rank`, { prompt, images, cleanPrompt: true });
    expect(clean.status).toBe(200);
    expect(clean.body).toMatchObject({ prompt, scoredPrompt: cleaned, warnings: [] });
    expect(clean.body.results.map((r: { score: number }) => r.score)).toEqual(expected.map((r) => r.score));
    const raw = await postJson(`${url}/v1/rank`, { prompt, images });
    expect(raw.body.scoredPrompt).toBe(prompt);
    const literal = await scorer.rank(prompt, IMAGE_NAMES.slice(0, 3).map(imagePath));
    expect(raw.body.results.map((r: { score: number }) => r.score)).toEqual(literal.map((r) => r.score));
    // Multipart: a text field "true"/"false"; anything else is refused with the field named.
    const form = new FormData();
    form.set("prompt", prompt);
    form.set("cleanPrompt", "true");
    form.append("images", blobOf(await imageBytes(IMAGE_NAMES[0]), "image/png"), "a.png");
    const mp = (await (await fetch(`${url}/v1/rank`, { method: "POST", body: form })).json()) as { scoredPrompt: string };
    expect(mp.scoredPrompt).toBe(cleaned);
    form.set("cleanPrompt", "yes");
    const bad = await fetch(`${url}/v1/rank`, { method: "POST", body: form });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toBe(
      'Expected "true" or "false" for cleanPrompt but received "yes" of type string',
    );
  });

  it("warns when the scored text is longer than the 75 tokens CLIP reads", async () => {
    const prompt = Array.from({ length: 90 }, (_, i) => `word${i}`).join(" ");
    const res = await postJson(`${url}/v1/rank`, { prompt, images: [(await imageBytes(IMAGE_NAMES[0])).toString("base64")] });
    expect(res.status).toBe(200);
    expect(res.body.warnings).toHaveLength(1);
    expect(res.body.warnings[0]).toMatch(/PickScore reads 75 .*; shorten it$/);
  });

  it("concurrent requests share vision runs and each gets its own numbers", async () => {
    // A batch runs when it is full (12) or after maxWaitMs, here far longer than the test: the 24
    // images of 6 requests run as exactly two full batches, whatever the machine's speed.
    const batched = await serve(scorer, { maxBatch: 12, maxWaitMs: 600_000 });
    const prompts = ["one", "two", "three", "four", "five", "six"];
    const images = await Promise.all(IMAGE_NAMES.map(async (n) => (await imageBytes(n)).toString("base64")));
    const answers = await Promise.all(prompts.map((prompt) => postJson(`${batched.url}/v1/rank`, { prompt, images })));
    const hist = await batched.server.metrics.batchSize.get();
    await batched.server.close();
    const value = (name: string) => hist.values.find((v) => v.metricName === name)?.value ?? 0;
    expect(value("pickrank_batch_size_count")).toBe(2);
    expect(value("pickrank_batch_size_sum")).toBe(24);
    for (const a of answers) expect(a.body.timings.batches).toBeGreaterThanOrEqual(1);
    for (let p = 0; p < prompts.length; p++) {
      const expected = await scorer.rank(prompts[p]!, IMAGE_NAMES.map(imagePath));
      expect(answers[p]!.body.results.map((r: { index: number }) => r.index)).toEqual(expected.map((r) => r.index));
      answers[p]!.body.results.forEach((r: { score: number }, i: number) => expect(r.score).toBeCloseTo(expected[i]!.score, 5));
    }
  });
});

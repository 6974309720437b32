import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { softmax, type Scorer } from "@pickrank/core";
import { removeTinyModels } from "../../../test/helpers/tiny-model.ts";
import type { PickrankServer } from "../src/index.ts";
import { IMAGE_NAMES, blobOf, imageBytes, postJson, serve, tinyScorer } from "./helpers.ts";

let scorer: Scorer;
let server: PickrankServer;
let url: string;
let b64: string[];

beforeAll(async () => {
  scorer = await tinyScorer();
  ({ server, url } = await serve(scorer));
  b64 = await Promise.all(IMAGE_NAMES.map(async (n) => (await imageBytes(n)).toString("base64")));
});

afterAll(async () => {
  await server?.close();
  await scorer?.dispose();
  await removeTinyModels();
});

async function textRuns(): Promise<number> {
  const m = await server.metrics.textEmbeddings.get();
  return m.values.find((v) => v.labels["source"] === "computed")?.value ?? 0;
}

describe("POST /v1/score", () => {
  it("keeps order, gives each item its own prompt's score, and embeds each distinct prompt once", async () => {
    const items = [
      { prompt: "score-a", image: b64[0]! },
      { prompt: "score-b", image: b64[1]! },
      { prompt: "score-a", image: b64[2]! },
      { prompt: "score-b", image: b64[3]! },
      { prompt: "score-a", image: b64[1]! },
    ];
    const before = await textRuns();
    const res = await postJson(`${url}/v1/score`, { items });
    expect(res.status).toBe(200);
    expect(await textRuns()).toBe(before + 2);
    expect(res.body.failed).toBe(0);
    expect(res.body.results.map((r: { index: number }) => r.index)).toEqual([0, 1, 2, 3, 4]);
    for (let i = 0; i < items.length; i++) {
      const [expected] = await scorer.score(items[i]!.prompt, [Buffer.from(items[i]!.image, "base64")]);
      expect(res.body.results[i].score).toBeCloseTo(expected!.score, 5);
      expect(res.body.results[i].prob).toBeUndefined();
    }
  });

  it("groups: softmax and rank within each group, equal to Scorer#rank over the group's images", async () => {
    const items = [
      { prompt: "g-one", image: b64[0]!, group: "g1" },
      { prompt: "g-two", image: b64[0]!, group: 2 },
      { prompt: "g-one", image: b64[1]!, group: "g1" },
      { prompt: "g-two", image: b64[3]!, group: 2 },
      { prompt: "g-one", image: b64[2]!, group: "g1" },
    ];
    const res = await postJson(`${url}/v1/score`, { items });
    expect(res.status).toBe(200);
    const g1 = await scorer.rank(
      "g-one",
      [0, 1, 2].map((i) => Buffer.from(b64[i]!, "base64")),
    );
    const byIndex = [0, 2, 4];
    for (const r of g1) {
      const got = res.body.results[byIndex[r.index]!];
      expect(got.group).toBe("g1");
      expect(got.prob).toBeCloseTo(r.prob, 6);
      expect(got.rank).toBe(r.rank);
    }
    const g2 = [res.body.results[1], res.body.results[3]];
    const probs = softmax(g2.map((r: { score: number }) => r.score));
    g2.forEach((r: { prob: number }, k: number) => expect(r.prob).toBeCloseTo(probs[k]!, 9));
  });

  it("one bad item fails only itself; the group's softmax runs over the items that scored", async () => {
    const items = [
      { prompt: "mixed", image: b64[0]!, group: "m" },
      { prompt: "mixed", image: Buffer.from("not an image at all").toString("base64"), group: "m" },
      { prompt: "mixed", image: { raw: Buffer.alloc(10).toString("base64"), width: 4, height: 4, channels: 3 }, group: "m" },
      { prompt: "mixed", image: "%%% not base64 %%%", group: "m" },
      { prompt: "mixed", image: b64[1]!, group: "m" },
    ];
    const res = await postJson(`${url}/v1/score`, { items });
    expect(res.status).toBe(200);
    expect(res.body.failed).toBe(3);
    expect(res.body.results[1].error.code).toBe("BAD_IMAGE");
    expect(res.body.results[1].error.message).toMatch(/items\[1\]\.image/);
    expect(res.body.results[2].error.code).toBe("BAD_IMAGE");
    expect(res.body.results[2].error.message).toMatch(/Expected 48 bytes of raw pixels/);
    expect(res.body.results[3].error.code).toBe("BAD_INPUT");
    const ok = [res.body.results[0], res.body.results[4]];
    const expected = await scorer.rank(
      "mixed",
      [0, 1].map((i) => Buffer.from(b64[i]!, "base64")),
    );
    for (const r of expected) expect(ok[r.index].prob).toBeCloseTo(r.prob, 6);
    expect(ok.map((r: { rank: number }) => r.rank).sort()).toEqual([1, 2]);
  });

  it("cleanPrompt: each distinct prompt scored without its syntax, the scored text on each scored item", async () => {
    const res = await postJson(`${url}/v1/score`, {
      cleanPrompt: true,
      items: [
        { prompt: "(a cat:1.3), <lora:x:1>", image: b64[0]!, group: 1 },
        { prompt: "(a cat:1.3), <lora:x:1>", image: b64[1]!, group: 1 },
        { prompt: "a dog", image: b64[2]! },
        { prompt: "a dog", image: "not an image" },
      ],
    });
    expect(res.status).toBe(200);
    const cat = await scorer.rank("a cat", [await imageBytes(IMAGE_NAMES[0]), await imageBytes(IMAGE_NAMES[1])]);
    const byIndex = new Map(cat.map((r) => [r.index, r]));
    expect(res.body.results.slice(0, 2).map((r: { score: number; scoredPrompt: string }) => [r.score, r.scoredPrompt])).toEqual([
      [byIndex.get(0)!.score, "a cat"],
      [byIndex.get(1)!.score, "a cat"],
    ]);
    expect(res.body.results[2].scoredPrompt).toBe("a dog");
    expect(res.body.results[3].error.code).toBe("BAD_IMAGE");
    const plain = await postJson(`${url}/v1/score`, { items: [{ prompt: "(a cat:1.3)", image: b64[0]! }] });
    expect(plain.body.results[0].scoredPrompt).toBeUndefined();
  });

  it("BAD CALL - a group with two prompts is refused whole (scores compare one prompt's images only)", async () => {
    const res = await postJson(`${url}/v1/score`, {
      items: [
        { prompt: "x", image: b64[0]!, group: "g" },
        { prompt: "y", image: b64[1]!, group: "g" },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("BAD_INPUT");
    expect(res.body.error.message).toMatch(/one prompt per group/);
  });

  it("multipart: items as a JSON field whose images name file parts", async () => {
    const form = new FormData();
    form.set(
      "items",
      JSON.stringify([
        { prompt: "mp", image: { part: "b" } },
        { prompt: "mp", image: { part: "a" } },
        { prompt: "mp", image: { part: "zz" } },
      ]),
    );
    form.append("a", blobOf(await imageBytes(IMAGE_NAMES[0]), "image/png"), "a.png");
    form.append("b", blobOf(await imageBytes(IMAGE_NAMES[1]), "image/png"), "b.png");
    const res = await fetch(`${url}/v1/score`, { method: "POST", body: form });
    const body = (await res.json()) as { results: { score?: number; error?: { code: string } }[] };
    expect(res.status).toBe(200);
    const expected = await scorer.score("mp", [await imageBytes(IMAGE_NAMES[1]), await imageBytes(IMAGE_NAMES[0])]);
    expect(body.results[0]!.score).toBeCloseTo(expected[0]!.score, 5);
    expect(body.results[1]!.score).toBeCloseTo(expected[1]!.score, 5);
    expect(body.results[2]!.error!.code).toBe("BAD_INPUT");
  });
});

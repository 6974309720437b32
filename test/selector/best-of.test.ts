import { appendFile, mkdtemp, readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { bestOf, readPngText, serializeResult, type BestOfEvent, type SelectorScorer } from "@pickrank/selector";
import { MemoryBackend } from "../helpers/memory-backend.ts";
import { testScorer } from "./scorer.ts";

let scorer: Awaited<ReturnType<typeof testScorer>>;
let tmp: string;

beforeAll(async () => {
  scorer = await testScorer();
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-selector-"));
});
afterAll(async () => {
  await scorer.dispose();
  await rm(tmp, { recursive: true, force: true });
});

async function expectCode(p: Promise<unknown>, code: string): Promise<PickrankError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PickrankError);
  expect((e as PickrankError).code).toBe(code);
  return e as PickrankError;
}

describe("bestOf ranking", () => {
  it("ranks every candidate by the scores computed directly with the scorer", async () => {
    const backend = new MemoryBackend();
    const r = await bestOf({ prompt: "a red fox in snow", n: 6, seed: 100, backend, scorer, top: 2 });
    expect(r.seeds).toEqual([100, 101, 102, 103, 104, 105]);
    expect(r.ranked).toHaveLength(6);
    // Direct: embed each candidate's bytes and score over the same set.
    const text = await scorer.embedText("a red fox in snow");
    const byIndex = [...r.ranked].sort((a, b) => a.index - b.index);
    const embs = await scorer.embedImages(byIndex.map((c) => c.image));
    const direct = scorer.scoreEmbeddings(text, embs);
    // … and the Scorer's one-call API on the same images agrees.
    const viaScore = await scorer.score(
      "a red fox in snow",
      byIndex.map((c) => c.image),
    );
    viaScore.forEach((d, i) => expect(d.score).toBeCloseTo(direct[i]!.score, 4));
    byIndex.forEach((c, i) => {
      expect(c.score).toBeCloseTo(direct[i]!.score, 5);
      expect(c.prob).toBeCloseTo(direct[i]!.prob, 6);
      expect(c.seed).toBe(100 + c.index);
    });
    const order = direct
      .map((d, i) => ({ i, s: d.score }))
      .sort((a, b) => b.s - a.s)
      .map((x) => x.i);
    expect(r.ranked.map((c) => c.index)).toEqual(order);
    expect(r.ranked.map((c) => c.rank)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(r.best).toBe(r.ranked[0]);
    expect(r.top.map((c) => c.index)).toEqual(order.slice(0, 2));
    expect(r.ranked.reduce((s, c) => s + c.prob, 0)).toBeCloseTo(1, 6);
    expect(r.failed).toEqual([]);
    expect(r.model.dir).toBe(scorer.modelDir);
    expect(r.device).toBe(scorer.device);
    // One request, with the exact seeds.
    expect(backend.requests).toHaveLength(1);
    expect(backend.requests[0]!.seeds).toEqual(r.seeds);
  });

  it("scores candidates while the backend is still rendering", async () => {
    // The last candidate is rendered once one was scored (or after 10 s, an upper bound, not a measurement): a scorer
    // that waited for every render fails the order below, and how fast this machine scores does not matter (with
    // 15 ms between renders, a loaded machine's first score could come after the last render).
    let scoredOne!: () => void;
    const scored = new Promise<void>((r) => (scoredOne = r));
    const bound = setTimeout(() => scoredOne(), 10_000);
    const backend = new MemoryBackend({ delayMs: 15, holdBefore: { index: 4, until: scored } });
    const events: BestOfEvent[] = [];
    const onEvent = (e: BestOfEvent): void => {
      events.push(e);
      if (e.type === "scored") scoredOne();
    };
    await bestOf({ prompt: "p", n: 5, seed: 1, backend, scorer, batchSize: 2, onEvent }).finally(() => clearTimeout(bound));
    const firstScored = events.findIndex((e) => e.type === "scored");
    const lastRendered = events.map((e) => e.type).lastIndexOf("rendered");
    expect(firstScored).toBeGreaterThanOrEqual(0);
    expect(firstScored).toBeLessThan(lastRendered);
    expect(events.filter((e) => e.type === "scored")).toHaveLength(5);
  });

  it("records failed candidates per candidate and ranks the survivors", async () => {
    const backend = new MemoryBackend({ failSeeds: [11], garbageSeeds: [13] });
    const r = await bestOf({ prompt: "p", n: 5, seed: 10, backend, scorer });
    expect(r.ranked.map((c) => c.seed).sort()).toEqual([10, 12, 14]);
    expect(r.failed.map((f) => [f.seed, f.error.code])).toEqual([
      [11, "BACKEND_REJECTED"],
      [13, "BAD_IMAGE"],
    ]);
    expect(r.warnings.join(" ")).toMatch(/2 candidate/);
    const json = serializeResult(r) as { failed: { error: { code: string } }[]; ranked: Record<string, unknown>[] };
    expect(json.failed[0]!.error.code).toBe("BACKEND_REJECTED");
    expect(json.ranked[0]!["image"]).toBeUndefined();
    expect(json.ranked[0]!["embedding"]).toBeUndefined();
  });

  it("keeps what arrived when the backend fails mid-run", async () => {
    const backend = new MemoryBackend({ dieAfter: 3 });
    const r = await bestOf({ prompt: "p", n: 6, seed: 0, backend, scorer });
    expect(r.ranked).toHaveLength(3);
    expect(r.failed.map((f) => f.index)).toEqual([3, 4, 5]);
    expect(r.failed.every((f) => f.error.code === "BACKEND_UNREACHABLE")).toBe(true);
  });

  it("bestOf says TOO_FEW_CANDIDATES when fewer than minSurvivors survive", async () => {
    const backend = new MemoryBackend({ failSeeds: [0, 1, 2] });
    const e = await expectCode(bestOf({ prompt: "p", n: 4, seed: 0, backend, scorer, minSurvivors: 2 }), "TOO_FEW_CANDIDATES");
    expect(e.message).toMatch(/at least 2 .* but 1 of 4 survived/);
    expect(e.details?.["failed"]).toHaveLength(3);
  });

  it("bestOf passes the backend's error through when nothing could be rendered", async () => {
    await expectCode(bestOf({ prompt: "p", n: 3, backend: new MemoryBackend({ unreachable: true }), scorer }), "BACKEND_UNREACHABLE");
  });

  it("bestOf stops generation and scoring when cancelled", async () => {
    const backend = new MemoryBackend({ delayMs: 20 });
    const ctl = new AbortController();
    const p = bestOf({
      prompt: "p",
      n: 20,
      seed: 0,
      backend,
      scorer,
      signal: ctl.signal,
      onEvent: (e) => {
        if (e.type === "rendered" && e.rendered === 2) ctl.abort();
      },
    });
    await expectCode(p, "ABORTED");
    expect(backend.rendered.length).toBeLessThan(20);
  });

  it("several prompts share the scorer; one failing prompt does not stop the others", async () => {
    const backend = new MemoryBackend();
    let textCalls = 0;
    const counting: SelectorScorer = {
      device: scorer.device,
      modelDir: scorer.modelDir,
      manifest: scorer.manifest,
      embedText: (p: string) => {
        textCalls++;
        return scorer.embedText(p);
      },
      embedImages: (imgs, o) => scorer.embedImages(imgs, o),
      scoreEmbeddings: (t, e) => scorer.scoreEmbeddings(t, e),
    };
    const r = await bestOf({ prompts: ["one", "two", "three"], n: 3, seed: 5, backend, scorer: counting });
    expect(r.runs.map((x) => x.prompt)).toEqual(["one", "two", "three"]);
    expect(textCalls).toBe(3);
    expect(r.errors).toEqual([]);
    const failing = new MemoryBackend({ failSeeds: [5, 6, 7] });
    const r2 = await bestOf({ prompts: ["a", "b"], n: 3, seed: 5, backend: failing, scorer });
    expect(r2.runs).toHaveLength(0);
    expect(r2.errors.map((e) => e.error.code)).toEqual(["TOO_FEW_CANDIDATES", "TOO_FEW_CANDIDATES"]);
  });
});

describe("bestOf bad arguments", () => {
  const backend = new MemoryBackend();
  it.each([
    [{ n: 0 }, /Expected positive integer for n but received 0 of type number/],
    [{ n: 2.5 }, /for n but received 2.5/],
    [{ n: 4, top: 5 }, /Expected integer between 1 and n \(4\) for top but received 5/],
    [{ n: 4, minSurvivors: 0 }, /minSurvivors/],
    [{ n: 4, prompt: "" }, /non-empty string for prompt/],
    [{ n: 4, refine: { draft: {} } }, /at least one cheaper setting/],
    [{ n: 4, top: 3, refine: { draft: { steps: 4 }, k: 2 } }, /integer between top \(3\) and n \(4\) for refine.k/],
    [{ n: 4, diverse: { threshold: 2 } }, /diverse.threshold/],
  ])("bestOf rejects %j", async (bad, msg) => {
    const e = await expectCode(bestOf({ prompt: "p", backend, scorer, ...bad } as Parameters<typeof bestOf>[0]), "BAD_INPUT");
    expect(e.message).toMatch(msg);
  });
});

describe("draft-then-refine", () => {
  it("renders N drafts cheaply, re-renders the top k with the same seeds, and reports agreement", async () => {
    const backend = new MemoryBackend();
    const r = await bestOf({
      prompt: "castle",
      n: 8,
      seed: 40,
      backend,
      scorer,
      top: 1,
      params: { steps: 30, width: 64 },
      refine: { draft: { steps: 6 }, k: 4 },
    });
    expect(backend.requests).toHaveLength(2);
    const [draftReq, finalReq] = backend.requests;
    expect(draftReq!.params?.steps).toBe(6);
    expect(draftReq!.seeds).toHaveLength(8);
    expect(finalReq!.params?.steps).toBe(30);
    const refine = r.refine!;
    expect(refine.drafts).toHaveLength(8);
    expect(finalReq!.seeds).toEqual(refine.drafts.slice(0, 4).map((c) => c.seed));
    expect(r.ranked).toHaveLength(4);
    for (const c of r.ranked) expect(c.draft?.rank).toBeLessThanOrEqual(4);
    expect(refine.compared).toBe(4);
    expect(refine.spearman).toBeGreaterThanOrEqual(-1);
    expect(refine.spearman).toBeLessThanOrEqual(1);
    expect(refine.kendall).toBeGreaterThanOrEqual(-1);
    expect(refine.bestStayedBest).toBe(refine.draftBestFinalRank === 1);
    expect(r.params.steps).toBe(30);
  });
});

describe("diverse", () => {
  // The tiny random CLIP maps all images close together (cosine 0.89–0.998 between distinct ones), so
  // the threshold here sits between that and the exact duplicates' 1.0; PickScore's own spread is wider.
  const threshold = 0.9995;
  it("skips near-duplicates of an already-picked candidate", async () => {
    // Seeds 3 and 5 render exactly like seed 2.
    const backend = new MemoryBackend({ duplicateOf: { 3: 2, 5: 2 } });
    const plain = await bestOf({ prompt: "p", n: 6, seed: 0, backend, scorer, top: 3 });
    const copies = (seeds: number[]) => seeds.filter((s) => s === 2 || s === 3 || s === 5).length;
    // Without --diverse the three copies take the top 3 (seed 2 scores best under the tiny model).
    expect(copies(plain.top.map((c) => c.seed))).toBe(3);
    const diverse = await bestOf({ prompt: "p", n: 6, seed: 0, backend, scorer, top: 3, diverse: { threshold } });
    const seeds = diverse.top.map((c) => c.seed);
    expect(copies(seeds)).toBe(1);
    expect(diverse.top[0]!.seed).toBe(plain.top[0]!.seed);
    expect(diverse.diverse!.skipped.length).toBeGreaterThanOrEqual(1);
    expect(diverse.diverse!.skipped[0]!.cosine).toBeGreaterThan(0.99);
    // Asking for more than there are distinct images fills with the best skipped ones.
    const all = await bestOf({ prompt: "p", n: 6, seed: 0, backend, scorer, top: 6, diverse: { threshold } });
    expect(all.top).toHaveLength(6);
    expect(all.diverse!.skipped.filter((s) => s.filled)).toHaveLength(2);
  });
});

describe("output folder", () => {
  it("writes PNGs whose text chunks carry prompt, seed, score, prob, rank and model, plus result.json", async () => {
    const out = path.join(tmp, "out-basic");
    const backend = new MemoryBackend({ format: "jpeg" });
    const r = await bestOf({
      prompt: "a lighthouse, dusk",
      negativePrompt: "blurry",
      n: 4,
      seed: 7,
      backend,
      scorer,
      top: 2,
      params: { steps: 20, width: 64, height: 64, cfgScale: 7 },
      out,
    });
    const files = (await readdir(out)).sort();
    expect(files).toEqual(
      [".pickrank", "rank-01-seed-" + r.top[0]!.seed + ".png", "rank-02-seed-" + r.top[1]!.seed + ".png", "result.json"].sort(),
    );
    const png = await readFile(r.top[0]!.file!);
    expect((await sharp(png).metadata()).format).toBe("png");
    const text = readPngText(png);
    expect(text["parameters"]).toContain("a lighthouse, dusk\nNegative prompt: blurry\n");
    expect(text["parameters"]).toContain(`Seed: ${r.top[0]!.seed}`);
    expect(text["parameters"]).toMatch(/PickScore rank: 1\/4/);
    const meta = JSON.parse(text["pickrank"]!);
    expect(meta).toMatchObject({ prompt: "a lighthouse, dusk", seed: r.top[0]!.seed, rank: 1, model: { dtype: "fp32" } });
    expect(meta.score).toBeCloseTo(r.top[0]!.score, 10);
    expect(meta.prob).toBeCloseTo(r.top[0]!.prob, 10);
    const json = JSON.parse(await readFile(path.join(out, "result.json"), "utf8"));
    expect(json).toEqual(serializeResult(r));
    expect(json.ranked[0].file).toBe(r.top[0]!.file);
  });

  it("keeps non-Latin-1 prompts readable (iTXt) and writes every candidate with keep all", async () => {
    const out = path.join(tmp, "out-all");
    const r = await bestOf({ prompt: "猫の絵 🐱", n: 3, seed: 1, backend: new MemoryBackend(), scorer, out: { dir: out, keep: "all" } });
    expect(r.ranked.every((c) => c.file)).toBe(true);
    const text = readPngText(await readFile(r.ranked[2]!.file!));
    expect(text["parameters"]!.split("\n")[0]).toBe("猫の絵 🐱");
    expect(JSON.parse(text["pickrank"]!).prompt).toBe("猫の絵 🐱");
  });

  it("keep all in draft-then-refine also writes the drafts, marked as drafts", async () => {
    const out = path.join(tmp, "out-refine-all");
    const r = await bestOf({
      prompt: "p",
      n: 4,
      seed: 9,
      backend: new MemoryBackend(),
      scorer,
      params: { steps: 20 },
      refine: { draft: { steps: 4 }, k: 2 },
      out: { dir: out, keep: "all" },
    });
    const pngs = (await readdir(out)).filter((f) => f.endsWith(".png")).sort();
    expect(pngs.filter((f) => f.startsWith("draft-"))).toHaveLength(4);
    expect(pngs.filter((f) => f.startsWith("rank-"))).toHaveLength(2);
    const d = r.refine!.drafts[0]!;
    const meta = JSON.parse(readPngText(await readFile(d.file!))["pickrank"]!);
    expect(meta).toMatchObject({ draft: true, seed: d.seed, rank: 1, of: 4, params: { steps: 4 } });
    const fin = JSON.parse(readPngText(await readFile(r.best.file!))["pickrank"]!);
    expect(fin).toMatchObject({ seed: r.best.seed, rank: 1, of: 2, params: { steps: 20 }, draftScores: { rank: r.best.draft!.rank } });
    expect(fin.draft).toBeUndefined();
  });

  it("bestOf refuses an output folder holding another run (CONFLICT) and files it did not write", async () => {
    const out = path.join(tmp, "out-conflict");
    await bestOf({ prompt: "first", n: 2, seed: 1, backend: new MemoryBackend(), scorer, out });
    const e = await expectCode(bestOf({ prompt: "second", n: 2, seed: 1, backend: new MemoryBackend(), scorer, out }), "CONFLICT");
    expect(e.message).toMatch(/different prompts/);
    const wf = path.join(tmp, "out-fingerprint");
    await bestOf({
      prompt: "same",
      n: 2,
      seed: 1,
      backend: new MemoryBackend(),
      scorer,
      out: { dir: wf, fingerprint: { workflow: "aaa" } },
    });
    const e2 = await expectCode(
      bestOf({ prompt: "same", n: 2, seed: 1, backend: new MemoryBackend(), scorer, out: { dir: wf, fingerprint: { workflow: "bbb" } } }),
      "CONFLICT",
    );
    expect(e2.details?.["differs"]).toEqual(["fingerprint.workflow"]);
    const foreign = path.join(tmp, "out-foreign");
    await mkdir(foreign);
    await writeFile(path.join(foreign, "result.json"), "{}");
    await expectCode(bestOf({ prompt: "x", n: 2, backend: new MemoryBackend(), scorer, out: foreign }), "CONFLICT");
    expect(await readFile(path.join(foreign, "result.json"), "utf8")).toBe("{}");
  });

  it("bestOf refuses a folder another run is writing to (CONFLICT), and frees it when done", async () => {
    const out = path.join(tmp, "out-locked");
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    // The first run renders its last candidate only after the second was refused: it still holds the folder then.
    let refused!: () => void;
    const checked = new Promise<void>((r) => (refused = r));
    const first = bestOf({
      prompt: "busy",
      n: 3,
      seed: 1,
      backend: new MemoryBackend({ delayMs: 20, holdBefore: { index: 2, until: checked } }),
      scorer,
      out,
      onEvent: (e) => e.type === "prompt-start" && started(),
    });
    await running;
    const e = await expectCode(bestOf({ prompt: "busy", n: 3, seed: 1, backend: new MemoryBackend(), scorer, out }), "CONFLICT").finally(
      () => refused(),
    );
    expect(e.message).toMatch(/in use by another pickrank run \(pid \d+\)/);
    await first;
    const again = await bestOf({ prompt: "busy", n: 3, seed: 1, backend: new MemoryBackend(), scorer, out });
    expect(again.out!.resumed).toBe(3);
  });

  it("starts afresh when the run was killed while writing its first journal line", async () => {
    const out = path.join(tmp, "out-torn-head");
    await mkdir(path.join(out, ".pickrank"), { recursive: true });
    await writeFile(path.join(out, ".pickrank", "journal.jsonl"), '{"t":"run","vers');
    const r = await bestOf({ prompt: "p", n: 2, seed: 3, backend: new MemoryBackend(), scorer, out });
    expect(r.ranked).toHaveLength(2);
    const again = await bestOf({ prompt: "p", n: 2, seed: 3, backend: new MemoryBackend(), scorer, out });
    expect(again.out!.resumed).toBe(2);
  });

  it("resumes a cancelled run without rendering finished candidates again", async () => {
    const out = path.join(tmp, "out-resume");
    const ctl = new AbortController();
    const first = new MemoryBackend({ delayMs: 5 });
    await expectCode(
      bestOf({
        prompt: "resume me",
        n: 6,
        backend: first,
        scorer,
        out,
        signal: ctl.signal,
        onEvent: (e) => {
          if (e.type === "rendered" && e.rendered === 3) ctl.abort();
        },
      }),
      "ABORTED",
    );
    // A kill in the middle of a journal append leaves a torn line: it is skipped, not fatal.
    await appendFile(path.join(out, ".pickrank", "journal.jsonl"), '{"t":"cand","p":0,"pha');
    const second = new MemoryBackend();
    // No seed given: the journal's random seed is reused, so the finished candidates still match.
    const r = await bestOf({ prompt: "resume me", n: 6, backend: second, scorer, out });
    expect(r.ranked).toHaveLength(6);
    expect(r.out!.resumed).toBe(3);
    expect(r.ranked.filter((c) => c.reused)).toHaveLength(3);
    expect(second.requests[0]!.seeds).toHaveLength(3);
    expect(new Set([...first.rendered.slice(0, 3), ...second.rendered])).toEqual(new Set(r.seeds));
    // A completed run re-run with another top: nothing is rendered, outputs follow the new selection.
    const third = new MemoryBackend();
    const r3 = await bestOf({ prompt: "resume me", n: 6, backend: third, scorer, out, top: 2 });
    expect(third.requests).toHaveLength(0);
    expect(r3.out!.files).toHaveLength(2);
    expect((await readdir(out)).filter((f) => f.endsWith(".png"))).toHaveLength(2);
  });
});

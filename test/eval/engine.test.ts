/**
 * The eval run engine over the selector's producer and consumer: every candidate of every
 * configuration stored with the scores the real scorer (and a second model as judge) gives its
 * bytes, equal seeds across configurations, failures reported not stored, and a second run that
 * renders only what is missing.
 */
import { getEventListeners } from "node:events";
import { readFile, mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Scorer } from "@pickrank/core";
import type { GenerateRequest, Generated } from "@pickrank/contract";
import { candidateKey, EvalStore, evalRun, seedsFor, type EvalEvent, type EvalPrompt } from "@pickrank/eval";
import { MemoryBackend } from "../helpers/memory-backend.ts";
import { tinyModel } from "../helpers/tiny-model.ts";

let tmp: string;
let scorer: Scorer;
let judge: Scorer;
const prompts: EvalPrompt[] = [
  { id: "p-1", text: "a red cube", category: "Artifacts" },
  { id: "p-2", text: "a (blue:1.2) sphere", category: "Artifacts" },
  { id: "p-3", text: "a green cat", category: "Animals" },
];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-engine-"));
  scorer = await Scorer.create({ model: await tinyModel(), device: "cpu" });
  judge = await Scorer.create({ model: await tinyModel("fp16"), device: "cpu" });
});
afterAll(async () => {
  await scorer?.dispose();
  await judge?.dispose();
  await rm(tmp, { recursive: true, force: true });
});

/** A MemoryBackend that renders nothing until `all` generate() calls have come: that many jobs in flight at once. */
class Gathering extends MemoryBackend {
  #arrived = 0;
  #open: () => void = () => {};
  readonly #gate = new Promise<void>((r) => (this.#open = r));
  constructor(private readonly all: number) {
    super();
  }
  override async *generate(req: GenerateRequest): AsyncIterable<Generated> {
    if (++this.#arrived === this.all) this.#open();
    await this.#gate;
    yield* super.generate(req);
  }
}

describe("evalRun", () => {
  it("stores every candidate with its scores; failures are reported, and a second run renders only those", async () => {
    const out = path.join(tmp, "run");
    const store = await EvalStore.open(path.join(out, "eval.duckdb"));
    const failSeed = seedsFor("p-2", 3, 7)[1]!;
    const a = new MemoryBackend();
    const b = new MemoryBackend({ failSeeds: [failSeed] });
    const events: EvalEvent[] = [];
    const configs = [
      { name: "A", backend: a, params: {}, concurrency: 2 },
      { name: "B", backend: b, params: { steps: 30 }, concurrency: 1 },
    ];
    const base = { store, outDir: out, prompts, n: 3, seedBase: 7, scorer, judge, batchSize: 2 };
    const r1 = await evalRun({ ...base, configs, onEvent: (e) => events.push(e) });
    expect(r1).toMatchObject({ asked: 18, scored: 17, rendered: 17, reused: 0 });
    expect(r1.failed.map((f) => [f.config, f.promptId, f.seedIndex, f.error.code])).toEqual([["B", "p-2", 1, "BACKEND_REJECTED"]]);
    expect(events[0]).toEqual({ type: "start", total: 18, done: 0 });
    expect(events.filter((e) => e.type === "scored")).toHaveLength(17);
    // Equal seeds across configurations, and the seeds of seedsFor.
    for (const p of prompts) expect(a.requests.filter((q) => q.prompt === p.text).flatMap((q) => q.seeds)).toEqual(seedsFor(p.id, 3, 7));
    const rows = await store.candidates();
    expect(rows).toHaveLength(17);
    // Each stored score is the scorer's own for the stored bytes, against the prompt without its weights.
    for (const row of rows.filter((x) => x.promptId === "p-2")) {
      const bytes = await readFile(path.join(out, row.image));
      const [s] = await scorer.score("a blue sphere", [bytes]);
      const [j] = await judge.score("a blue sphere", [bytes]);
      expect(row.score).toBeCloseTo(s!.score, 5);
      expect(row.judgeScore).toBeCloseTo(j!.score, 5);
      expect(row.image).toBe(`images/${row.config}/p-2/${row.seedIndex}.png`);
    }
    // The fp16 judge differs from the fp32 selector: the judge column is not a copy.
    expect(rows.some((x) => x.judgeScore !== x.score)).toBe(true);

    const b2 = new MemoryBackend();
    const a2 = new MemoryBackend();
    const r2 = await evalRun({
      ...base,
      configs: [
        { ...configs[0]!, backend: a2 },
        { ...configs[1]!, backend: b2 },
      ],
    });
    expect(r2).toMatchObject({ asked: 18, scored: 18, rendered: 1, reused: 0, failed: [] });
    expect(a2.rendered).toEqual([]);
    expect(b2.rendered).toEqual([failSeed]);
    expect((await store.doneKeys({ withJudge: true })).has(candidateKey({ config: "B", promptId: "p-2", seedIndex: 1 }))).toBe(true);
    await store.close();
  });

  it("a rendered but unscored candidate is replayed from the store, not rendered again", async () => {
    const out = path.join(tmp, "replay");
    const store = await EvalStore.open(path.join(out, "eval.duckdb"));
    const one = [prompts[0]!];
    const first = new MemoryBackend();
    await evalRun({
      store,
      outDir: out,
      prompts: one,
      n: 2,
      seedBase: 0,
      scorer,
      batchSize: 4,
      configs: [{ name: "A", backend: first, params: {}, concurrency: 1 }],
    });
    // As after a kill between the image's row and its score: the row is there, the score is not.
    const before = await store.candidates();
    const storeSql = await store.query("update candidates set score = null where seed_index = 1");
    expect(storeSql).toEqual([{ Count: 1n }]);
    const again = new MemoryBackend();
    const r = await evalRun({
      store,
      outDir: out,
      prompts: one,
      n: 2,
      seedBase: 0,
      scorer,
      batchSize: 4,
      configs: [{ name: "A", backend: again, params: {}, concurrency: 1 }],
    });
    expect(r).toMatchObject({ scored: 2, rendered: 0, reused: 1 });
    expect(again.requests).toHaveLength(0);
    expect((await store.candidates())[1]!.score).toBeCloseTo(before[1]!.score!, 6);
    await store.close();
  });

  it("twelve jobs in flight on the caller's signal: no MaxListenersExceededWarning, and no listener left after", async () => {
    const out = path.join(tmp, "many");
    const store = await EvalStore.open(path.join(out, "eval.duckdb"));
    const many = Array.from({ length: 12 }, (_, i) => ({ id: `m-${i}`, text: `a cube number ${i}`, category: "Artifacts" }));
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on("warning", onWarning);
    const ctl = new AbortController();
    try {
      const r = await evalRun({
        store,
        outDir: out,
        prompts: many,
        n: 1,
        seedBase: 0,
        scorer,
        batchSize: 4,
        signal: ctl.signal,
        configs: [{ name: "A", backend: new Gathering(12), params: {}, concurrency: 12 }],
      });
      expect(r).toMatchObject({ scored: 12, failed: [] });
    } finally {
      process.off("warning", onWarning);
      await store.close();
    }
    expect(warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message)).toEqual([]);
    expect(getEventListeners(ctl.signal, "abort")).toHaveLength(0);
  });
});

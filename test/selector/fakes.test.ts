/**
 * bestOf through the real adapters against the fake ComfyUI and Automatic1111 servers, with the real
 * Scorer on the tiny model.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createBackend } from "@pickrank/adapters";
import { PickrankError } from "@pickrank/contract";
import { bestOf } from "@pickrank/selector";
import { startFakeA1111 } from "../fakes/a1111-server.ts";
import { readFakeImageInfo, startFakeComfyUI } from "../fakes/comfyui-server.ts";
import { testScorer } from "./scorer.ts";

let scorer: Awaited<ReturnType<typeof testScorer>>;
beforeAll(async () => {
  scorer = await testScorer();
});
afterAll(async () => {
  await scorer.dispose();
});

describe("bestOf on fake servers", () => {
  it("ComfyUI: every candidate scored as the Scorer scores its bytes, best first", async () => {
    const fake = await startFakeComfyUI();
    const backend = createBackend({ kind: "comfyui", url: fake.url });
    try {
      const r = await bestOf({ prompt: "a harbour at night", n: 5, seed: 300, backend, scorer, top: 2 });
      expect(r.ranked.map((c) => readFakeImageInfo(c.image)!.seed)).toEqual(r.ranked.map((c) => c.seed));
      const direct = await scorer.rank(
        "a harbour at night",
        r.ranked.map((c) => c.image),
      );
      expect(direct.map((d) => d.index)).toEqual([0, 1, 2, 3, 4]);
      direct.forEach((d) => expect(r.ranked[d.index]!.score).toBeCloseTo(d.score, 4));
      expect(r.ranked[0]!.backend).toBe(`comfyui@${fake.url}`);
    } finally {
      await backend.close();
      await fake.close();
    }
  });

  it("A1111: draft-then-refine re-renders the chosen seeds exactly", async () => {
    const fake = await startFakeA1111();
    const backend = createBackend({ kind: "a1111", url: fake.url });
    try {
      const r = await bestOf({
        prompt: "a fox",
        n: 6,
        seed: 40,
        backend,
        scorer,
        params: { steps: 20 },
        refine: { draft: { steps: 5 }, k: 3 },
      });
      const draftSeeds = fake.requests.filter((b) => b["steps"] === 5).flatMap((b) => seedsOf(b));
      const finalSeeds = fake.requests.filter((b) => b["steps"] === 20).flatMap((b) => seedsOf(b));
      expect(draftSeeds.sort()).toEqual([40, 41, 42, 43, 44, 45]);
      expect(finalSeeds.sort()).toEqual(
        r
          .refine!.drafts.slice(0, 3)
          .map((c) => c.seed)
          .sort(),
      );
      expect(r.ranked.map((c) => c.seed).sort()).toEqual(finalSeeds.sort());
    } finally {
      await backend.close();
      await fake.close();
    }
  });

  it("A1111: a server killed mid-run leaves the candidates that arrived", async () => {
    const fake = await startFakeA1111({ faults: { killOnRequest: 3 } });
    const backend = createBackend({ kind: "a1111", url: fake.url });
    try {
      const r = await bestOf({ prompt: "p", n: 5, seed: 1, backend, scorer });
      expect(r.ranked.length).toBeGreaterThanOrEqual(1);
      expect(r.ranked.length + r.failed.length).toBe(5);
      expect(r.failed.length).toBeGreaterThanOrEqual(1);
    } finally {
      await backend.close();
      await fake.close();
    }
  });

  it("ComfyUI: cancelling stops the server's work and rejects with ABORTED", async () => {
    const fake = await startFakeComfyUI({ stepDelayMs: 20 });
    const backend = createBackend({ kind: "comfyui", url: fake.url });
    const ctl = new AbortController();
    try {
      const p = bestOf({ prompt: "p", n: 6, backend, scorer, signal: ctl.signal, onEvent: (e) => e.type === "scored" && ctl.abort() });
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(PickrankError);
      expect((err as PickrankError).code).toBe("ABORTED");
      expect(fake.finished.length).toBeLessThan(6);
    } finally {
      await backend.close();
      await fake.close();
    }
  });
});

/** The seeds one txt2img body asks for (seed, seed+1, … over batch_size × n_iter). */
function seedsOf(body: Record<string, unknown>): number[] {
  const count = Number(body["batch_size"] ?? 1) * Number(body["n_iter"] ?? 1);
  return Array.from({ length: count }, (_, i) => Number(body["seed"]) + i);
}

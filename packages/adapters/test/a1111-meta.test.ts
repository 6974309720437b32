import { afterEach, describe, expect, it, vi } from "vitest";
import { A1111Backend, type A1111Options, type Generated } from "@pickrank/adapters";
import { startFakeA1111, type FakeA1111, type FakeA1111Options } from "../../../test/fakes/a1111-server.ts";
import { collect, pickrankRejection } from "../../../test/helpers/async.ts";

/** vi.waitFor's bound: its 1 s default is short on a loaded 2-core machine (an upper bound, not a measurement). */
const WAIT = { timeout: 15_000 };

const FAST: A1111Options = { timeoutMs: 5000, retries: 1, retryDelayMs: 20, progressIntervalMs: 0, generationTimeoutMs: 20_000 };

const fakes: FakeA1111[] = [];
async function fake(o: FakeA1111Options = {}): Promise<FakeA1111> {
  const f = await startFakeA1111(o);
  fakes.push(f);
  return f;
}
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

describe("A1111Backend candidate meta", () => {
  it("records each image's own infotext (after the grid's) and the settings from the answer's info", async () => {
    const f = await fake();
    const got = await collect(
      new A1111Backend(f.url, FAST).generate({
        prompt: "a lighthouse",
        negativePrompt: "fog",
        n: 2,
        seed: 10,
        params: { batchSize: 2, steps: 3, cfgScale: 6, width: 640, height: 448, sampler: "Euler" },
      }),
    );
    expect(got.map((g) => g.ok && [g.seed, g.batchIndex, g.meta?.infotext])).toEqual([
      [10, 0, "a lighthouse\nNegative prompt: fog\nSteps: 3, Sampler: Euler, Seed: 10, Model: v1-5-pruned-emaonly.safetensors"],
      [11, 1, "a lighthouse\nNegative prompt: fog\nSteps: 3, Sampler: Euler, Seed: 11, Model: v1-5-pruned-emaonly.safetensors"],
    ]);
    expect(got[0]!.ok && got[0]!.meta?.settings).toEqual({
      checkpoint: "v1-5-pruned-emaonly",
      steps: 3,
      cfgScale: 6,
      sampler: "Euler",
      width: 640,
      height: 448,
      negativePrompt: "fog",
      other: { "Model hash": "6ce0161689", "Clip skip": 1 },
    });
  });
});

describe("A1111Backend: one request at a time, seeds, extra, close", () => {
  it("serializes txt2img across concurrent runs of one backend (the server renders one at a time)", async () => {
    const f = await fake({ stepDelayMs: 3 });
    const b = new A1111Backend(f.url, FAST);
    expect(b.maxConcurrency).toBe(1);
    const [x, y] = await Promise.all([
      collect(b.generate({ prompt: "x", n: 3, seed: 1, params: { steps: 3 } })),
      collect(b.generate({ prompt: "y", n: 3, seed: 100, params: { steps: 3 } })),
    ]);
    expect([...x, ...y].every((g) => g.ok)).toBe(true);
    expect(f.requests).toHaveLength(6);
    expect(f.maxInFlight).toBe(1);
  });

  it("refuses seeds above 2^32 − 1, and params.extra fields pickrank sets itself", async () => {
    const f = await fake();
    const b = new A1111Backend(f.url, FAST);
    const e1 = await pickrankRejection(collect(b.generate({ prompt: "x", n: 1, seeds: [2 ** 32] })));
    expect(e1.message).toBe(
      `Expected an integer between 0 and 4294967295 (the largest seed ${b.id} accepts) for seeds[0] but received 4294967296 of type number`,
    );
    const e2 = await pickrankRejection(collect(b.generate({ prompt: "x", n: 3, seed: 2 ** 32 - 2 })));
    expect(e2).toMatchObject({ code: "BAD_INPUT", details: { parameter: "seed" } });
    const e3 = await pickrankRejection(collect(b.generate({ prompt: "x", n: 1, params: { extra: { seed: 5 } } })));
    expect(e3.message).toMatch(/^Expected no field pickrank sets itself .* for extra.seed but received 5 of type number$/);
    expect(f.requests).toHaveLength(0);
  });

  it("a server error answer is BACKEND_REJECTED, a connection cut mid-render BACKEND_UNREACHABLE", async () => {
    const f = await fake({ faults: { failSeeds: [2], killOnRequest: 3 } });
    const got = await collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 3, seed: 1, params: { steps: 4 } }));
    expect(got.map((g) => (g.ok ? "ok" : g.error.code))).toEqual(["ok", "BACKEND_REJECTED", "BACKEND_UNREACHABLE"]);
  });

  it("close() mid-render: CLOSED, the render interrupted on the server; generate() after close: CLOSED", async () => {
    const f = await fake({ stepDelayMs: 20 });
    const b = new A1111Backend(f.url, FAST);
    const got: Generated[] = [];
    const run = (async () => {
      for await (const g of b.generate({ prompt: "x", n: 3, seed: 1, params: { steps: 50 } })) got.push(g);
    })();
    await vi.waitFor(() => expect(f.requests).toHaveLength(1), WAIT);
    await b.close();
    expect((await pickrankRejection(run)).code).toBe("CLOSED");
    expect(f.interrupts).toBe(1);
    expect((await pickrankRejection(collect(b.generate({ prompt: "x", n: 1 })))).code).toBe("CLOSED");
    expect(f.requests).toHaveLength(1);
  });
});

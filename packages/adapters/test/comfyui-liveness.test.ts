import { afterEach, describe, expect, it, vi } from "vitest";
import { ComfyUIBackend, type BackendEvent, type ComfyUIOptions, type Generated } from "@pickrank/adapters";
import { readFakeImageInfo, startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from "../../../test/fakes/comfyui-server.ts";
import { SD15 } from "./workflows.ts";
import { collect, pickrankRejection } from "../../../test/helpers/async.ts";

/** vi.waitFor's bound: its 1 s default is short on a loaded 2-core machine (an upper bound, not a measurement). */
const WAIT = { timeout: 15_000 };

/** Short limits: the stall limit is far below the foreign job's length, so only liveness by answers can pass. */
const FAST: ComfyUIOptions = {
  timeoutMs: 5000,
  retries: 1,
  retryDelayMs: 20,
  pollIntervalMs: 30,
  watchdogMs: 100,
  connectTimeoutMs: 5000,
  reconnectAttempts: 3,
  workflow: SD15,
};

const fakes: FakeComfyUI[] = [];
async function fake(o: FakeComfyUIOptions = {}): Promise<FakeComfyUI> {
  const f = await startFakeComfyUI(o);
  fakes.push(f);
  return f;
}
afterEach(async () => {
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

describe("ComfyUIBackend liveness", () => {
  it("survives a foreign job ahead of ours that lasts many stall limits, and says the server is busy", async () => {
    const f = await fake();
    // Four stall limits long; the limit stays well above the gaps a loaded machine puts between our own prompt's messages.
    const foreign = f.queueForeign({ holdMs: 4000 });
    const events: BackendEvent[] = [];
    const b = new ComfyUIBackend(f.url, { ...FAST, stallTimeoutMs: 1000 });
    const got = await collect(b.generate({ prompt: "a fox", n: 3, seed: 5, params: { steps: 2 }, onEvent: (e) => events.push(e) }));
    expect(got.map((g) => (g.ok ? g.seed : g.error.message)).sort()).toEqual([5, 6, 7]);
    expect(f.finished[0]).toBe(foreign);
    expect(f.deleted).toEqual([]);
    const warnings = events.filter((e) => e.type === "warning");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ type: "warning", backend: b.id });
    expect(warnings[0]!.type === "warning" && warnings[0]!.message).toMatch(
      /is busy with other clients' work: our prompts wait behind 1 of their prompt\(s\)/,
    );
  });

  it("does not count as the server's silence the time pickrank itself was held up (a blocked event loop)", async () => {
    const f = await fake();
    const foreign = f.queueForeign({ holdMs: 1500 });
    const b = new ComfyUIBackend(f.url, { ...FAST, stallTimeoutMs: 400 });
    // The third poll of /queue is sent, then this process is blocked for twice the stall limit before it can read
    // the answer: when it wakes, the timer's tick runs before the socket's data, so the answer is still unread.
    const realFetch = globalThis.fetch;
    let polls = 0;
    const spy = vi.spyOn(globalThis, "fetch").mockImplementation((input, init) => {
      const answer = realFetch(input, init);
      if (String(input).includes("/queue") && ++polls === 3) {
        const until = Date.now() + 800;
        while (Date.now() < until) {}
      }
      return answer;
    });
    try {
      const got = await collect(b.generate({ prompt: "a fox", n: 2, seed: 5, params: { steps: 2 } }));
      expect(polls).toBeGreaterThanOrEqual(3);
      expect(got.map((g) => (g.ok ? g.seed : g.error.message))).toEqual([5, 6]);
      expect(f.finished[0]).toBe(foreign);
    } finally {
      spy.mockRestore();
    }
  });

  it("stalls (BACKEND_STALLED) when our running prompt stops progressing, and interrupts it", async () => {
    const f = await fake({ faults: { freezeSeeds: [11] } });
    const b = new ComfyUIBackend(f.url, { ...FAST, stallTimeoutMs: 1000 });
    const got = await collect(b.generate({ prompt: "x", n: 3, seed: 10, params: { steps: 2 } }));
    expect(got.map((g) => (g.ok ? "ok" : g.error.code))).toEqual(["ok", "BACKEND_STALLED", "BACKEND_STALLED"]);
    const failed = got[1]!;
    expect(!failed.ok && failed.error.message).toMatch(
      /has been running our prompt [\w-]+ for [\d.]+ s without a sign of progress \(stall limit 1\.0 s: --stall-timeout/,
    );
    expect(!failed.ok && failed.error.details).toMatchObject({ backend: b.id, stallMs: 1000, promptId: f.prompts[1]!.id });
    expect(f.interrupts.map((i) => i.promptId)).toEqual([f.prompts[1]!.id]);
    await vi.waitFor(() => expect(f.finished).toContain(f.prompts[1]!.id), WAIT);
  });

  it("stalls when the server stops answering: socket silent and /queue hanging", async () => {
    const f = await fake({ faults: { hang: ["execute", "queue", "history"] } });
    const got = await collect(new ComfyUIBackend(f.url, { ...FAST, stallTimeoutMs: 300 }).generate({ prompt: "x", n: 2, seed: 1 }));
    expect(got.map((g) => !g.ok && g.error.code)).toEqual(["BACKEND_STALLED", "BACKEND_STALLED"]);
    expect(!got[0]!.ok && got[0]!.error.message).toMatch(/has answered nothing, on the socket or over HTTP, for [\d.]+ s/);
  });

  it("keeps at most maxQueued of our prompts on the server (default 2)", async () => {
    const f2 = await fake({ stepDelayMs: 2 });
    const a = await collect(new ComfyUIBackend(f2.url, FAST).generate({ prompt: "x", n: 6, seed: 1, params: { steps: 3 } }));
    expect(a.filter((g) => g.ok)).toHaveLength(6);
    expect(f2.prompts).toHaveLength(6);
    expect(f2.maxInFlight).toBe(2);
    const f1 = await fake({ stepDelayMs: 2 });
    const b = await collect(
      new ComfyUIBackend(f1.url, { ...FAST, maxQueued: 1 }).generate({ prompt: "x", n: 4, seed: 1, params: { steps: 3 } }),
    );
    expect(b.filter((g) => g.ok)).toHaveLength(4);
    expect(f1.maxInFlight).toBe(1);
  });

  it("a hard stop leaves nothing behind: at most maxQueued prompts were ever queued, all deleted or interrupted", async () => {
    const f = await fake({ stepDelayMs: 20 });
    const ac = new AbortController();
    const b = new ComfyUIBackend(f.url, FAST);
    const run = collect(b.generate({ prompt: "x", n: 8, seed: 1, signal: ac.signal, params: { steps: 50 } }));
    await vi.waitFor(() => expect(f.prompts).toHaveLength(2), WAIT);
    ac.abort();
    expect((await pickrankRejection(run)).code).toBe("ABORTED");
    expect(f.prompts).toHaveLength(2);
    // Each of ours was deleted from the queue, or interrupted if it had started (a loaded machine decides which).
    for (const p of f.prompts) expect(f.deleted.includes(p.id) || f.interrupts.some((i) => i.promptId === p.id)).toBe(true);
    expect(f.interrupts.every((i) => i.promptId === i.running)).toBe(true);
    await vi.waitFor(() => expect(f.finished.length + f.deleted.filter((id) => !f.finished.includes(id)).length).toBe(2), WAIT);
  });
});

describe("ComfyUIBackend.close", () => {
  it("close() during a run: the run throws CLOSED and takes its prompts off the server; generate() after close throws CLOSED", async () => {
    const f = await fake({ stepDelayMs: 20 });
    const b = new ComfyUIBackend(f.url, FAST);
    const got: Generated[] = [];
    // 500 steps × 20 ms: the first prompt renders for 10 s, far longer than a loaded machine takes from its first
    // progress to close() (with 50 steps, 1 s: it could end first, and the interrupt hit the second). close() ends it.
    const events: BackendEvent[] = [];
    const run = (async () => {
      for await (const g of b.generate({ prompt: "x", n: 4, seed: 1, params: { steps: 500 }, onEvent: (e) => events.push(e) })) got.push(g);
    })();
    // Close once our first prompt renders (and the second waits).
    await vi.waitFor(() => expect(events.some((e) => e.type === "progress")).toBe(true), { timeout: 10_000 });
    expect(f.prompts).toHaveLength(2);
    await b.close();
    const err = await pickrankRejection(run);
    expect(err.code).toBe("CLOSED");
    expect(err.message).toBe(`${b.id} is closed: it takes no more generate() calls and its running ones were stopped`);
    expect(f.deleted).toContain(f.prompts[1]!.id);
    expect(f.interrupts.map((i) => i.promptId)).toEqual([f.prompts[0]!.id]);
    const after = await pickrankRejection(collect(b.generate({ prompt: "x", n: 1 })));
    expect(after.code).toBe("CLOSED");
    expect(f.prompts).toHaveLength(2);
  });
});

describe("ComfyUIBackend candidate meta", () => {
  it("records the API prompt queued (with its seed) and the settings read from it", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: undefined });
    const got = await collect(
      b.generate({
        prompt: "a red fox",
        negativePrompt: "ugly",
        n: 2,
        seed: 40,
        params: { steps: 3, width: 64, height: 48, cfgScale: 5.5, sampler: "dpmpp_2m" },
      }),
    );
    for (const g of got) {
      if (!g.ok) throw g.error;
      const sent = f.prompts.find((p) => p.id === g.meta?.promptId)!;
      expect(g.meta?.comfyPrompt).toEqual(sent.prompt);
      expect((g.meta?.comfyPrompt as Record<string, { inputs: Record<string, unknown> }> | undefined)?.["3"]?.inputs.seed).toBe(g.seed);
      expect(g.meta?.settings).toEqual({
        checkpoint: "sd15.safetensors",
        steps: 3,
        cfgScale: 5.5,
        sampler: "dpmpp_2m",
        scheduler: "normal",
        width: 64,
        height: 48,
        negativePrompt: "ugly",
      });
      expect(readFakeImageInfo(g.image)?.seed).toBe(g.seed);
    }
  });

  it("batchSize > 1: the batch's seed for every image, batchIndex, and the seed each asked for", async () => {
    const f = await fake();
    const got = await collect(new ComfyUIBackend(f.url, { ...FAST, batchSize: 2 }).generate({ prompt: "x", n: 3, seed: 7 }));
    const ok = got.filter((g) => g.ok).sort((a, b) => Number(a.key) - Number(b.key));
    expect(ok.map((g) => [g.key, g.seed, g.batchIndex, g.meta?.requestedSeed])).toEqual([
      ["0", 7, 0, undefined],
      ["1", 7, 1, 8],
      ["2", 9, 0, undefined],
    ]);
    expect(() => new ComfyUIBackend(f.url, { ...FAST, mode: "batch" } as ComfyUIOptions)).toThrow(
      /Expected params.batchSize \(or options.batchSize\) for batches but received options.mode/,
    );
  });

  it("refuses seeds past 2^53 − 1 before anything is sent", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, FAST);
    const err = await pickrankRejection(collect(b.generate({ prompt: "x", n: 2, seed: Number.MAX_SAFE_INTEGER })));
    expect(err.code).toBe("BAD_INPUT");
    expect(err.message).toContain(`so that seed + n − 1 stays at or below ${Number.MAX_SAFE_INTEGER}, the largest seed ${b.id} accepts`);
    expect(f.prompts).toHaveLength(0);
  });
});

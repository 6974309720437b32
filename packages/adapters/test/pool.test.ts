import { afterEach, describe, expect, it, vi } from "vitest";
import { A1111Backend, ComfyUIBackend, PoolBackend, createBackend, type BackendEvent, type Generated } from "@pickrank/adapters";
import { readFakeImageInfo, startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from "../../../test/fakes/comfyui-server.ts";
import { startFakeA1111, type FakeA1111, type FakeA1111Options } from "../../../test/fakes/a1111-server.ts";
import { SD15 } from "./workflows.ts";
import { collect } from "../../../test/helpers/async.ts";

/** vi.waitFor's bound: its 1 s default is short on a loaded 2-core machine (an upper bound, not a measurement). */
const WAIT = { timeout: 15_000 };

const COMFY = {
  timeoutMs: 5000,
  retries: 1,
  retryDelayMs: 20,
  pollIntervalMs: 50,
  watchdogMs: 400,
  connectTimeoutMs: 5000,
  reconnectAttempts: 2,
};
const A1111 = { timeoutMs: 5000, retries: 1, retryDelayMs: 20, progressIntervalMs: 0, generationTimeoutMs: 20_000 };

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});
async function comfy(o: FakeComfyUIOptions = {}): Promise<{ fake: FakeComfyUI; backend: ComfyUIBackend }> {
  const fake = await startFakeComfyUI({ stepDelayMs: 3, ...o });
  closers.push(() => fake.close());
  return { fake, backend: new ComfyUIBackend(fake.url, { ...COMFY, workflow: SD15 }) };
}
async function a1111(o: FakeA1111Options = {}): Promise<{ fake: FakeA1111; backend: A1111Backend }> {
  const fake = await startFakeA1111({ stepDelayMs: 3, ...o });
  closers.push(() => fake.close());
  return { fake, backend: new A1111Backend(fake.url, A1111) };
}
function expectAllOnce(got: Generated[], n: number, firstSeed: number): void {
  expect(got.map((g) => Number(g.key)).sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
  for (const g of got) {
    expect(g.seed).toBe(firstSeed + Number(g.key));
    if (g.ok) expect(readFakeImageInfo(g.image)?.seed).toBe(g.seed);
  }
}

describe("PoolBackend", () => {
  it("spreads candidates over ComfyUI and A1111 servers within each server's concurrency", async () => {
    const a = await comfy();
    const b = await comfy();
    const c = await a1111();
    const pool = new PoolBackend([a.backend, { backend: b.backend, concurrency: 1 }, c.backend], { concurrency: 2 });
    const got = await collect(pool.generate({ prompt: "a bridge", n: 9, seed: 500, params: { steps: 4 } }));
    expect(got.every((g) => g.ok)).toBe(true);
    expectAllOnce(got, 9, 500);
    const by = new Set(got.map((g) => g.backend));
    expect(by).toEqual(new Set([a.backend.id, b.backend.id, c.backend.id]));
    expect(a.fake.maxInFlight).toBeLessThanOrEqual(2);
    expect(b.fake.maxInFlight).toBe(1);
    expect(c.fake.maxInFlight).toBe(1); // A1111: maxConcurrency 1
    const stats = pool.stats();
    expect(stats.map((s) => s.backend)).toEqual([a.backend.id, b.backend.id, c.backend.id]);
    expect(stats.reduce((t, s) => t + s.completed, 0)).toBe(9);
    for (const s of stats) {
      expect(s, JSON.stringify(s)).toMatchObject({ up: true, failed: 0 });
      expect(s.busyMs).toBeGreaterThan(0);
      expect(s.imagesPerMinute).toBeGreaterThan(0);
    }
  });

  it("loses a ComfyUI server mid-run and still delivers every candidate", async () => {
    const dying = await comfy({ faults: { killAfterPrompts: 1 } });
    const healthy = await comfy();
    const events: BackendEvent[] = [];
    const pool = new PoolBackend([dying.backend, healthy.backend], { concurrency: 2 });
    const got = await collect(pool.generate({ prompt: "x", n: 6, seed: 10, params: { steps: 4 }, onEvent: (e) => events.push(e) }));
    expect(got.every((g) => g.ok)).toBe(true);
    expectAllOnce(got, 6, 10);
    const retries = events.filter((e) => e.type === "retry");
    expect(retries.length).toBeGreaterThanOrEqual(1);
    expect(retries.every((e) => e.backend === dying.backend.id)).toBe(true);
    const [d, h] = pool.stats();
    // It dies right after finishing its first prompt: that image may or may not have been fetched in time.
    expect(d).toMatchObject({ up: false });
    expect(d!.completed).toBeLessThanOrEqual(1);
    expect(d!.retriedElsewhere).toBe(retries.length);
    expect(d!.lastError).toContain(dying.backend.id);
    expect(h!.completed).toBe(6 - d!.completed);
  });

  it("loses an A1111 server halfway through a render and retries it on ComfyUI", async () => {
    const dying = await a1111({ faults: { killOnRequest: 2 } });
    const healthy = await comfy();
    const pool = new PoolBackend([dying.backend, healthy.backend], { concurrency: 1 });
    const got = await collect(pool.generate({ prompt: "x", n: 4, seed: 1, params: { steps: 4 } }));
    expect(got.every((g) => g.ok)).toBe(true);
    expectAllOnce(got, 4, 1);
    expect(pool.stats()[0]).toMatchObject({ up: false, completed: 1, retriedElsewhere: 1 });
  });

  it("skips servers that are down at the start and throws when none is up", async () => {
    const down = await comfy();
    await down.fake.kill();
    const upA = await a1111();
    const pool = new PoolBackend([down.backend, upA.backend]);
    const got = await collect(pool.generate({ prompt: "x", n: 2, seed: 3, params: { steps: 1 } }));
    expect(got.map((g) => g.backend)).toEqual([upA.backend.id, upA.backend.id]);
    expect(down.fake.prompts).toHaveLength(0);

    await upA.fake.kill();
    const err = await collect(pool.generate({ prompt: "x", n: 1 })).catch((e: Error & { code: string }) => e);
    expect(err).toMatchObject({ code: "BACKEND_UNREACHABLE" });
    expect((err as Error).message).toMatch(
      /^No server of pool\[.*\] is up: comfyui@.*could not be reached.*; a1111@.*could not be reached/,
    );
  });

  it("gives a candidate up only after every server failed it", async () => {
    const a = await comfy({ faults: { failSeeds: [8] } });
    const b = await a1111({ faults: { failSeeds: [8] } });
    const events: BackendEvent[] = [];
    const pool = new PoolBackend([a.backend, b.backend], { concurrency: 1 });
    const got = await collect(pool.generate({ prompt: "x", n: 3, seed: 7, params: { steps: 1 }, onEvent: (e) => events.push(e) }));
    const failed = got.filter((g) => !g.ok);
    expect(failed.map((g) => Number(g.key))).toEqual([1]);
    expect(events.filter((e) => e.type === "retry").map((e) => Number(e.key))).toEqual([1]);
    expect(events.filter((e) => e.type === "candidate-failed").map((e) => Number(e.key))).toEqual([1]);
    expect(got.filter((g) => g.ok)).toHaveLength(2);
  });

  it("cancellation reaches every server", async () => {
    // b's prompts run until interrupted, so one of ours still runs there when the cancellation comes, however slow the
    // machine (with 60 ms renders on both, a late cancellation could find nothing of ours running on either); a's
    // 300 ms renders give b time to queue its first prompt before a's first candidate.
    const a = await comfy({ stepDelayMs: 50 });
    const b = await comfy({ stepDelayMs: 10, faults: { freezeSeeds: [1, 2, 3, 4, 5, 6, 7, 8] } });
    const ac = new AbortController();
    const pool = new PoolBackend([a.backend, b.backend], { concurrency: 2 });
    const err = await (async () => {
      for await (const g of pool.generate({ prompt: "x", n: 8, seed: 1, signal: ac.signal, params: { steps: 6 } })) {
        expect(g.ok).toBe(true);
        ac.abort();
      }
    })().catch((e: Error & { code: string }) => e);
    expect(err).toMatchObject({ code: "ABORTED" });
    // Each server had a running prompt of ours; both were interrupted before generate returned.
    expect(a.fake.interrupts.length + b.fake.interrupts.length).toBeGreaterThanOrEqual(1);
    await vi.waitFor(() => expect(a.fake.finished.length + b.fake.finished.length).toBeLessThan(8), WAIT);
    expect(a.fake.prompts.length + b.fake.prompts.length).toBeLessThanOrEqual(5);
  });

  it("is built from specs through the registry", async () => {
    const a = await comfy();
    const b = await a1111();
    const pool = createBackend({
      kind: "pool",
      url: "",
      options: {
        concurrency: 1,
        backends: [
          { kind: "comfyui", url: a.fake.url, workflow: SD15, options: COMFY },
          { kind: "a1111", url: b.fake.url, options: A1111 },
        ],
      },
    });
    expect(pool.kind).toBe("pool");
    expect(pool.id).toBe(`pool[comfyui@${a.fake.url},a1111@${b.fake.url}]`);
    const check = await pool.check();
    expect(check.ok).toBe(true);
    const got = await collect(pool.generate({ prompt: "x", n: 4, seed: 1, params: { steps: 1 } }));
    expectAllOnce(got, 4, 1);
    expect(() => createBackend({ kind: "pool", url: "", options: { backends: [] } })).toThrow(/non-empty array/);
  });
});

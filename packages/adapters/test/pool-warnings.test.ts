import { afterEach, describe, expect, it, vi } from "vitest";
import { A1111Backend, ComfyUIBackend, PoolBackend, type BackendEvent, type Generated } from "@pickrank/adapters";
import { startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from "../../../test/fakes/comfyui-server.ts";
import { startFakeA1111, type FakeA1111 } from "../../../test/fakes/a1111-server.ts";
import { SD15 } from "./workflows.ts";
import { collect, pickrankRejection } from "../../../test/helpers/async.ts";

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
  workflow: SD15,
};
const A1111 = { timeoutMs: 5000, retries: 1, retryDelayMs: 20, progressIntervalMs: 0, generationTimeoutMs: 20_000 };

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});
async function comfy(o: FakeComfyUIOptions = {}): Promise<{ fake: FakeComfyUI; backend: ComfyUIBackend }> {
  const fake = await startFakeComfyUI({ stepDelayMs: 3, ...o });
  closers.push(() => fake.close());
  return { fake, backend: new ComfyUIBackend(fake.url, COMFY) };
}
async function a1111(): Promise<{ fake: FakeA1111; backend: A1111Backend }> {
  const fake = await startFakeA1111({ stepDelayMs: 3 });
  closers.push(() => fake.close());
  return { fake, backend: new A1111Backend(fake.url, A1111) };
}
const warnings = (events: BackendEvent[]) => events.filter((e): e is Extract<BackendEvent, { type: "warning" }> => e.type === "warning");

describe("PoolBackend warnings", () => {
  it("warns at once about a member that is down at the start, once per outage", async () => {
    const dead = await comfy();
    await dead.fake.kill();
    const live = await comfy();
    const pool = new PoolBackend([dead.backend, live.backend]);
    const events: BackendEvent[] = [];
    const got = await collect(pool.generate({ prompt: "x", n: 2, seed: 1, onEvent: (e) => events.push(e) }));
    expect(got.every((g) => g.ok)).toBe(true);
    const w = warnings(events);
    expect(w).toHaveLength(1);
    expect(w[0]).toEqual({
      type: "warning",
      backend: dead.backend.id,
      code: "BACKEND_UNREACHABLE",
      message: expect.stringMatching(/^comfyui@.* is down and left out of this run: .*could not be reached.*; 1 of 2 servers render$/),
    });
    // The next run (the next prompt of a --prompts file) does not repeat it.
    const again: BackendEvent[] = [];
    await collect(pool.generate({ prompt: "y", n: 1, seed: 1, onEvent: (e) => again.push(e) }));
    expect(warnings(again)).toEqual([]);
  });

  it("warns when a member is taken off mid-run", async () => {
    const dying = await comfy({ faults: { killAfterPrompts: 1 } });
    const healthy = await comfy();
    const events: BackendEvent[] = [];
    const pool = new PoolBackend([dying.backend, healthy.backend], { concurrency: 2 });
    const got = await collect(pool.generate({ prompt: "x", n: 6, seed: 10, params: { steps: 4 }, onEvent: (e) => events.push(e) }));
    expect(got.every((g) => g.ok)).toBe(true);
    const w = warnings(events);
    expect(w).toHaveLength(1);
    expect(w[0]).toMatchObject({ backend: dying.backend.id, code: "BACKEND_UNREACHABLE" });
    expect(w[0]!.message).toMatch(/^comfyui@.* was taken off this run: .*; its candidates go to the other 1 server\(s\)$/);
  });
});

describe("PoolBackend limits", () => {
  it("gives an A1111 member one request at a time (its maxConcurrency), the smallest maxSeed of all", async () => {
    const a = await comfy();
    const b = await a1111();
    const pool = new PoolBackend([a.backend, b.backend], { concurrency: 2 });
    expect(pool.concurrency()).toEqual([2, 1]);
    expect(pool.maxSeed).toBe(2 ** 32 - 1);
    const got = await collect(pool.generate({ prompt: "x", n: 6, seed: 1, params: { steps: 3 } }));
    expect(got.filter((g) => g.ok)).toHaveLength(6);
    expect(b.fake.maxInFlight).toBe(1);
    const err = await pickrankRejection(collect(pool.generate({ prompt: "x", n: 1, seed: 2 ** 32 })));
    expect(err).toMatchObject({ code: "BAD_INPUT", details: { parameter: "seed" } });
    expect(err.message).toContain(`the largest seed ${pool.id} accepts`);
  });

  it("refuses params.extra for members of different kinds (its shape is each kind's own)", async () => {
    const a = await comfy();
    const b = await a1111();
    const pool = new PoolBackend([a.backend, b.backend]);
    const err = await pickrankRejection(collect(pool.generate({ prompt: "x", n: 1, params: { extra: { restore_faces: true } } })));
    expect(err.message).toBe(
      "Expected no params.extra for a pool of different kinds (comfyui, a1111): its shape is each kind's own for extra but received object",
    );
  });

  it("close() during a run: CLOSED from the pool, the members' prompts taken off; generate() after close: CLOSED", async () => {
    const a = await comfy({ stepDelayMs: 20 });
    const pool = new PoolBackend([a.backend]);
    const got: Generated[] = [];
    const events: BackendEvent[] = [];
    const run = (async () => {
      for await (const g of pool.generate({ prompt: "x", n: 4, seed: 1, params: { steps: 500 }, onEvent: (e) => events.push(e) }))
        got.push(g);
    })();
    // Close once a prompt renders: 500 steps × 20 ms, so it still renders when close() comes however slow the machine
    // (with 50 steps, 1 s, it could end first, and close() find nothing of ours running to interrupt). close() ends it.
    await vi.waitFor(() => expect(events.some((e) => e.type === "progress")).toBe(true), { timeout: 10_000 });
    await pool.close();
    expect((await pickrankRejection(run)).code).toBe("CLOSED");
    await vi.waitFor(() => expect(a.fake.interrupts.length).toBe(1), WAIT);
    expect((await pickrankRejection(collect(pool.generate({ prompt: "x", n: 1 })))).code).toBe("CLOSED");
  });
});

import { afterEach, describe, expect, it, vi } from "vitest";
import WebSocket from "ws";
import { ComfyUIBackend, createBackend, type BackendEvent, type ComfyUIOptions, type Generated } from "@pickrank/adapters";
import { isPickrankError } from "@pickrank/contract";
import { readFakeImageInfo, startFakeComfyUI, type FakeComfyUI, type FakeComfyUIOptions } from "../../../test/fakes/comfyui-server.ts";
import { FLUX, SD15, SD15_WEBSOCKET, SDXL_REFINER } from "./workflows.ts";
import { collect, rejection } from "../../../test/helpers/async.ts";

/** Short limits so fault tests finish in well under a second each. */
const FAST: ComfyUIOptions = {
  timeoutMs: 5000,
  retries: 1,
  retryDelayMs: 20,
  pollIntervalMs: 50,
  watchdogMs: 400,
  connectTimeoutMs: 5000,
  reconnectAttempts: 3,
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

describe("ComfyUIBackend.generate", () => {
  it("queues N seeds, yields each candidate with its seed, image, timings and events", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, { ...FAST });
    const events: BackendEvent[] = [];
    const got = await collect(
      b.generate({
        prompt: "a red fox",
        negativePrompt: "ugly",
        n: 4,
        seed: 100,
        params: { width: 64, height: 64, steps: 3 },
        onEvent: (e) => events.push(e),
      }),
    );
    expect(got.map((g) => g.ok)).toEqual([true, true, true, true]);
    expect(got.map((g) => Number(g.key)).sort()).toEqual([0, 1, 2, 3]);
    for (const g of got) {
      if (!g.ok) continue;
      expect(g.seed).toBe(100 + Number(g.key));
      expect(g.format).toBe("png");
      expect(g.backend).toBe(`comfyui@${f.url}`);
      expect(readFakeImageInfo(g.image)).toEqual({ seed: g.seed, prompt: "a red fox", negative: "ugly", batchIndex: 0 });
      expect(g.timings.totalMs).toBeGreaterThanOrEqual(g.timings.renderMs);
    }
    // The default workflow's empty ckpt_name was filled from the server's list.
    expect(f.prompts).toHaveLength(4);
    expect(f.prompts.every((p) => p.prompt["4"]!.inputs.ckpt_name === "sd15.safetensors")).toBe(true);
    expect(new Set(f.prompts.map((p) => p.clientId)).size).toBe(1);
    expect(events.filter((e) => e.type === "queued")).toHaveLength(4);
    expect(events.filter((e) => e.type === "candidate")).toHaveLength(4);
    const progress = events.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThanOrEqual(12);
    expect(progress[0]).toMatchObject({ key: "0", step: 1, steps: 3 });
  });

  it("routes events by client_id: another client's socket sees status only", async () => {
    const f = await fake();
    const other: { type: string }[] = [];
    const ws = new WebSocket(`${f.url.replace("http", "ws")}/ws?clientId=someone-else`);
    ws.on("message", (d, bin) => {
      if (!bin) other.push(JSON.parse(String(d)) as { type: string });
    });
    await new Promise((r) => ws.once("open", r));
    const got = await collect(new ComfyUIBackend(f.url, FAST).generate({ prompt: "x", n: 2, seed: 1 }));
    ws.close();
    expect(got.filter((g) => g.ok)).toHaveLength(2);
    expect(other.length).toBeGreaterThan(1);
    expect(new Set(other.map((m) => m.type))).toEqual(new Set(["status"]));
  });

  it("params.batchSize: one prompt per batch, candidates share the seed and record the batch index", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 });
    const got = await collect(b.generate({ prompt: "a boat", n: 5, seed: 7, params: { batchSize: 2 } }));
    expect(f.prompts.map((p) => p.prompt["5"]!.inputs.batch_size)).toEqual([2, 2, 1]);
    const ok = got.filter((g) => g.ok).sort((a, b) => Number(a.key) - Number(b.key));
    expect(ok.map((g) => [Number(g.key), g.seed, g.batchIndex])).toEqual([
      [0, 7, 0],
      [1, 7, 1],
      [2, 9, 0],
      [3, 9, 1],
      [4, 11, 0],
    ]);
    expect(ok.map((g) => readFakeImageInfo(g.image)?.batchIndex)).toEqual([0, 1, 0, 1, 0]);
  });

  it("reads SaveImageWebsocket images from binary frames and ignores sampler previews", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: SD15_WEBSOCKET });
    const got = await collect(b.generate({ prompt: "a lamp", n: 3, seed: 50 }));
    expect(got.every((g) => g.ok)).toBe(true);
    for (const g of got) if (g.ok) expect(readFakeImageInfo(g.image)).toMatchObject({ seed: g.seed, prompt: "a lamp" });
    expect(f.requests.some((r) => r.path === "/view")).toBe(false);
  });

  it("runs SDXL-with-refiner and Flux graphs end to end", async () => {
    const f = await fake({ checkpoints: ["sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors"] });
    for (const workflow of [SDXL_REFINER, FLUX]) {
      const got = await collect(new ComfyUIBackend(f.url, { ...FAST, workflow }).generate({ prompt: "a castle", n: 2, seed: 9 }));
      expect(got.map((g) => (g.ok ? readFakeImageInfo(g.image) : g.error.message))).toEqual([
        expect.objectContaining({ seed: 9, prompt: "a castle" }),
        expect.objectContaining({ seed: 10, prompt: "a castle" }),
      ]);
    }
  });

  it("turns a 400 with node_errors into a readable BACKEND_REJECTED listing the failing nodes", async () => {
    const f = await fake();
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 });
    const err = await rejection(collect(b.generate({ prompt: "x", n: 2, params: { checkpoint: "missing.safetensors", sampler: "nope" } })));
    expect(err).toMatchObject({ code: "BACKEND_REJECTED" });
    expect(err.message).toContain(`comfyui@${f.url} rejected POST /prompt with HTTP 400`);
    expect(err.message).toContain("Prompt outputs failed validation (prompt_outputs_failed_validation)");
    expect(err.message).toContain("CheckpointLoaderSimple #4 (Value not in list: ckpt_name: 'missing.safetensors' not in");
    expect(err.message).toContain("KSampler #3 (Value not in list: sampler_name: 'nope'");
    expect(err.details?.nodeErrors).toEqual([
      expect.objectContaining({ node: "3", classType: "KSampler" }),
      expect.objectContaining({ node: "4", classType: "CheckpointLoaderSimple" }),
    ]);
  });

  it("reports an execution_error as a failed candidate and keeps the others", async () => {
    const f = await fake({ faults: { failSeeds: [21] } });
    const events: BackendEvent[] = [];
    const got = await collect(
      new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 3, seed: 20, onEvent: (e) => events.push(e) }),
    );
    const failed = got.filter((g) => !g.ok);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ key: "1", seed: 21, error: { code: "BACKEND_REJECTED" } });
    expect(!failed[0]!.ok && failed[0]!.error.message).toMatch(/at KSampler #3: torch.OutOfMemoryError: CUDA out of memory/);
    expect(events.some((e) => e.type === "candidate-failed" && Number(e.key) === 1)).toBe(true);
  });

  it("works under the /api prefix (apiPrefix option, or a URL ending in /api)", async () => {
    const f = await fake({ apiOnly: true });
    const a = await collect(
      new ComfyUIBackend(f.url, { ...FAST, workflow: SD15, apiPrefix: true }).generate({ prompt: "x", n: 1, seed: 1 }),
    );
    const b = await collect(new ComfyUIBackend(`${f.url}/api`, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 1, seed: 2 }));
    expect([...a, ...b].every((g) => g.ok)).toBe(true);
    expect(f.requests.every((r) => r.path.startsWith("/api/"))).toBe(true);
  });

  it("sends Basic credentials from the URL, keeps them out of ids and errors", async () => {
    const f = await fake({ auth: { username: "ann", password: "s3cret-pw" } });
    const url = f.url.replace("http://", "http://ann:s3cret-pw@");
    const b = new ComfyUIBackend(url, { ...FAST, workflow: SD15 });
    expect(b.id).toBe(`comfyui@${f.url}`);
    const got = await collect(b.generate({ prompt: "x", n: 1, seed: 1 }));
    expect(got[0]?.ok).toBe(true);
    expect(got[0]?.backend).not.toContain("s3cret");

    const viaOption = createBackend({ kind: "comfyui", url: f.url, auth: "ann:s3cret-pw", workflow: SD15, options: { ...FAST } });
    expect((await viaOption.check()).ok).toBe(true);

    const wrong = new ComfyUIBackend(f.url.replace("http://", "http://ann:wrong-pw@"), { ...FAST, workflow: SD15 });
    const err = await rejection(collect(wrong.generate({ prompt: "x", n: 1 })));
    expect(err.code).toBe("BACKEND_AUTH");
    expect(err.message).toMatch(/refused the credentials given for GET \/(ws \(WebSocket\)|object_info) \(HTTP 401/);
    expect(JSON.stringify({ m: err.message, d: err.details })).not.toMatch(/wrong-pw|s3cret/);
    const check = await wrong.check();
    expect(check.ok).toBe(false);
    expect(JSON.stringify(check)).not.toContain("wrong-pw");
  });

  it("cancellation deletes our queued prompts and interrupts our running one", async () => {
    // Our second prompt (seed 2) runs until interrupted: it is the one running when the cancellation arrives, however
    // slow the machine (with 120 ms renders, a cancellation later than that found nothing of ours running).
    const f = await fake({ stepDelayMs: 20, faults: { freezeSeeds: [2] } });
    const ac = new AbortController();
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 });
    const got: Generated[] = [];
    const err = await rejection(
      (async () => {
        for await (const g of b.generate({ prompt: "x", n: 4, seed: 1, signal: ac.signal, params: { steps: 6 } })) {
          got.push(g);
          ac.abort();
        }
      })(),
    );
    expect(err).toMatchObject({ code: "ABORTED" });
    expect(got).toHaveLength(1);
    const ids = f.prompts.map((p) => p.id);
    expect(f.deleted).toEqual(expect.arrayContaining(ids.slice(2)));
    // Exactly one /interrupt, aimed at the prompt of ours that was running (the second).
    expect(f.interrupts).toEqual([{ promptId: ids[1], running: ids[1] }]);
    // The interrupted one ends, the deleted ones never run.
    const upTo = ids.slice(0, ids.indexOf(f.interrupts[0]!.promptId!) + 1);
    await vi.waitFor(() => expect(f.finished).toEqual(upTo), { timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 60));
    expect(f.finished).toEqual(upTo);
  });

  it("a consumer that stops early frees the server too", async () => {
    // The second prompt (seed 2) runs until interrupted, so it still runs when the consumer stops, however slow the machine.
    const f = await fake({ stepDelayMs: 15, faults: { freezeSeeds: [2] } });
    const b = new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 });
    for await (const g of b.generate({ prompt: "x", n: 3, seed: 1, params: { steps: 6 } })) {
      expect(g.ok).toBe(true);
      break;
    }
    expect(f.deleted).toContain(f.prompts[2]!.id);
    expect(f.interrupts).toEqual([{ promptId: f.prompts[1]!.id, running: f.prompts[1]!.id }]);
  });

  it("an already-aborted signal throws ABORTED before touching the server", async () => {
    const f = await fake();
    const err = await rejection(collect(new ComfyUIBackend(f.url, FAST).generate({ prompt: "x", n: 1, signal: AbortSignal.abort() })));
    expect(err.code).toBe("ABORTED");
    expect(f.prompts).toHaveLength(0);
  });

  it("reconnects a dropped socket and still collects every prompt", async () => {
    const f = await fake({ stepDelayMs: 10, faults: { dropSocketsAfterMessages: 12 } });
    const events: BackendEvent[] = [];
    const got = await collect(
      new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 }).generate({
        prompt: "x",
        n: 4,
        seed: 3,
        params: { steps: 10 },
        onEvent: (e) => events.push(e),
      }),
    );
    expect(
      got
        .filter((g) => g.ok)
        .map((g) => Number(g.key))
        .sort(),
    ).toEqual([0, 1, 2, 3]);
    expect(f.connections).toBeGreaterThanOrEqual(2);
    // Progress of the last prompt arrived over the new socket.
    expect(events.some((e) => e.type === "progress" && Number(e.key) === 3)).toBe(true);
  });

  it("falls back to /history when the socket cannot come back", async () => {
    const f = await fake({ faults: { dropSocketsAfterMessages: 5, refuseReconnect: true } });
    const got = await collect(new ComfyUIBackend(f.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 3, seed: 3 }));
    expect(
      got
        .filter((g) => g.ok)
        .map((g) => Number(g.key))
        .sort(),
    ).toEqual([0, 1, 2]);
    expect(f.connections).toBe(1);
  });

  it("gets by on /history when the WebSocket upgrade stalls or its frames are garbage", async () => {
    const stalled = await fake({ faults: { hang: ["ws"] } });
    const a = await collect(
      new ComfyUIBackend(stalled.url, { ...FAST, workflow: SD15, connectTimeoutMs: 500 }).generate({ prompt: "x", n: 2, seed: 1 }),
    );
    expect(a.filter((g) => g.ok)).toHaveLength(2);
    const junk = await fake({ faults: { garbage: ["ws"] } });
    const b = await collect(new ComfyUIBackend(junk.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 2, seed: 1 }));
    expect(b.filter((g) => g.ok)).toHaveLength(2);
  });

  it("names the URL when the server cannot be reached", async () => {
    const f = await fake();
    await f.kill();
    const err = await rejection(collect(new ComfyUIBackend(f.url, FAST).generate({ prompt: "x", n: 1 })));
    expect(err.code).toBe("BACKEND_UNREACHABLE");
    expect(err.message).toContain(`comfyui@${f.url}`);
  });

  it("times out on a server that never answers POST /prompt", async () => {
    const f = await fake({ faults: { hang: ["prompt"] } });
    const err = await rejection(
      collect(new ComfyUIBackend(f.url, { ...FAST, workflow: SD15, timeoutMs: 500 }).generate({ prompt: "x", n: 1 })),
    );
    expect(err.code).toBe("TIMEOUT");
    expect(err.message).toMatch(/did not answer POST \/prompt within 500 ms/);
  });

  it("fails the run with BACKEND_STALLED when our prompts wait in a queue where nothing runs", async () => {
    const f = await fake({ faults: { hang: ["execute"] } });
    const got = await collect(new ComfyUIBackend(f.url, { ...FAST, workflow: SD15, stallTimeoutMs: 300 }).generate({ prompt: "x", n: 2 }));
    expect(got.map((g) => !g.ok && g.error.code)).toEqual(["BACKEND_STALLED", "BACKEND_STALLED"]);
    expect(!got[0]!.ok && got[0]!.error.message).toMatch(
      /waiting for [\d.]+ s in a queue where nothing runs \(stall limit 0.3 s: --stall-timeout/,
    );
    await new Promise((r) => setTimeout(r, 50));
    expect(f.deleted).toEqual(f.prompts.map((p) => p.id));
  });

  it("reports garbage: a non-JSON /prompt answer, a wrong-shaped /history, bytes that are no image", async () => {
    const f1 = await fake({ faults: { garbage: ["prompt"] } });
    const e1 = await rejection(collect(new ComfyUIBackend(f1.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 1 })));
    expect(e1.code).toBe("BACKEND_PROTOCOL");
    expect(e1.message).toMatch(/answered POST \/prompt with something that is not JSON \("<html>.*; expected JSON/);

    const f2 = await fake({ faults: { garbage: ["history"] } });
    const g2 = await collect(new ComfyUIBackend(f2.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 1 }));
    expect(g2[0]).toMatchObject({ ok: false, error: { code: "BACKEND_PROTOCOL" } });

    const f3 = await fake({ faults: { garbage: ["view"] } });
    const g3 = await collect(new ComfyUIBackend(f3.url, { ...FAST, workflow: SD15 }).generate({ prompt: "x", n: 1 }));
    expect(g3[0]).toMatchObject({ ok: false, error: { code: "BACKEND_PROTOCOL" } });
    expect(!g3[0]!.ok && g3[0]!.error.message).toMatch(/not PNG, JPEG or WebP/);
  });

  it("validates the request before anything is sent", async () => {
    const b = new ComfyUIBackend("http://127.0.0.1:9", FAST);
    await expect(collect(b.generate({ prompt: "x", n: 0 }))).rejects.toThrow(
      "Expected positive integer for n but received 0 of type number",
    );
    await expect(collect(b.generate({ prompt: "x", n: 2, seeds: [1] }))).rejects.toThrow(/seeds/);
    await expect(collect(b.generate({ prompt: "x", n: 1, params: { width: 1.5 } }))).rejects.toThrow(
      "Expected positive integer for width but received 1.5 of type number",
    );
    expect(() => new ComfyUIBackend("ftp://host", FAST)).toThrow(/http:\/\/ or https:\/\/ URL/);
  });
});

describe("ComfyUIBackend.check / listCheckpoints", () => {
  it("reports what the server has, and unreachable servers without throwing", async () => {
    const f = await fake({ comboV2: true, checkpoints: ["a.safetensors", "b.ckpt"] });
    const b = new ComfyUIBackend(f.url, FAST);
    const c = await b.check();
    expect(c).toMatchObject({ ok: true, kind: "comfyui", version: "0.3.99-fake", queue: { running: 0, pending: 0 } });
    expect(await b.listCheckpoints()).toEqual(["a.safetensors", "b.ckpt"]);
    const old = await fake({ checkpoints: ["x.safetensors"] });
    expect(await new ComfyUIBackend(old.url, FAST).listCheckpoints()).toEqual(["x.safetensors"]);
    await f.kill();
    const down = await b.check();
    expect(down.ok).toBe(false);
    expect(down.error?.code).toBe("BACKEND_UNREACHABLE");
  });

  it("errors are PickrankErrors", async () => {
    const e = await rejection(collect(new ComfyUIBackend("http://127.0.0.1:9", FAST).generate({ prompt: "x", n: 1 })));
    expect(isPickrankError(e)).toBe(true);
  });
});

import { afterEach, describe, expect, it } from "vitest";
import { A1111Backend, createBackend, type A1111Options, type BackendEvent, type Generated } from "@pickrank/adapters";
import { readFakeImageInfo } from "../../../test/fakes/comfyui-server.ts";
import { startFakeA1111, type FakeA1111, type FakeA1111Options } from "../../../test/fakes/a1111-server.ts";
import { collect, rejection } from "../../../test/helpers/async.ts";

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

describe("A1111Backend.generate", () => {
  it("one txt2img per candidate by default, each with its seed, image and events", async () => {
    const f = await fake();
    const events: BackendEvent[] = [];
    const b = new A1111Backend(f.url, FAST);
    const got = await collect(
      b.generate({ prompt: "a lighthouse", negativePrompt: "fog", n: 3, seed: 40, params: { steps: 3 }, onEvent: (e) => events.push(e) }),
    );
    expect(got.map((g) => [g.ok, Number(g.key), g.seed])).toEqual([
      [true, 0, 40],
      [true, 1, 41],
      [true, 2, 42],
    ]);
    for (const g of got)
      if (g.ok) expect(readFakeImageInfo(g.image)).toMatchObject({ seed: g.seed, prompt: "a lighthouse", negative: "fog" });
    expect(got[0]).toMatchObject({ format: "png", backend: `a1111@${f.url}` });
    expect(f.requests.map((r) => [r.seed, r.batch_size, r.n_iter])).toEqual([
      [40, 1, 1],
      [41, 1, 1],
      [42, 1, 1],
    ]);
    expect(events.filter((e) => e.type === "queued")).toHaveLength(3);
    expect(events.filter((e) => e.type === "candidate").map((e) => (e as { seed: number }).seed)).toEqual([40, 41, 42]);
  });

  it("batches consecutive seeds, skips the grid image and maps all_seeds to each image", async () => {
    const f = await fake();
    const got = await collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 4, seed: 10, params: { batchSize: 4, steps: 2 } }));
    expect(f.requests).toHaveLength(1);
    expect(f.requests[0]).toMatchObject({ seed: 10, batch_size: 4, n_iter: 1 });
    expect(got.map((g) => (g.ok ? [Number(g.key), g.seed, g.batchIndex, readFakeImageInfo(g.image)?.seed] : g.error.message))).toEqual([
      [0, 10, 0, 10],
      [1, 11, 1, 11],
      [2, 12, 2, 12],
      [3, 13, 3, 13],
    ]);
  });

  it("splits exact seeds into runs of consecutive ones", async () => {
    const f = await fake();
    const got = await collect(
      new A1111Backend(f.url, { ...FAST, batchSize: 3 }).generate({ prompt: "x", n: 3, seeds: [5, 9, 10], params: { steps: 2 } }),
    );
    expect(f.requests.map((r) => [r.seed, r.batch_size])).toEqual([
      [5, 1],
      [9, 2],
    ]);
    expect(got.filter((g) => g.ok).map((g) => g.seed)).toEqual([5, 9, 10]);
  });

  it("maps every parameter, the checkpoint through override_settings, and passes extra through", async () => {
    const f = await fake();
    await collect(
      new A1111Backend(f.url, FAST).generate({
        prompt: "x",
        n: 1,
        seed: 1,
        params: {
          steps: 2,
          cfgScale: 4.5,
          width: 640,
          height: 448,
          sampler: "DPM++ 2M",
          scheduler: "Karras",
          checkpoint: "sd_xl_base_1.0.safetensors [31e35c80fc]",
          extra: { restore_faces: true, enable_hr: false },
        },
      }),
    );
    expect(f.requests[0]).toMatchObject({
      steps: 2,
      cfg_scale: 4.5,
      width: 640,
      height: 448,
      sampler_name: "DPM++ 2M",
      scheduler: "Karras",
      override_settings: { sd_model_checkpoint: "sd_xl_base_1.0.safetensors [31e35c80fc]" },
      override_settings_restore_afterwards: true,
      restore_faces: true,
      enable_hr: false,
      send_images: true,
      save_images: false,
    });
  });

  it("reports per-step progress from /sdapi/v1/progress", async () => {
    const f = await fake({ stepDelayMs: 10 });
    const events: BackendEvent[] = [];
    await collect(
      new A1111Backend(f.url, { ...FAST, progressIntervalMs: 10 }).generate({
        prompt: "x",
        n: 1,
        seed: 1,
        params: { steps: 10 },
        onEvent: (e) => events.push(e),
      }),
    );
    const progress = events.filter((e) => e.type === "progress");
    expect(progress.length).toBeGreaterThan(2);
    expect(progress[0]).toMatchObject({ key: "0", steps: 10 });
  });

  it("sends --api-auth credentials; a wrong password is a readable 401 without the secret", async () => {
    const f = await fake({ auth: { username: "bob", password: "hunter2-xyz" } });
    const ok = await collect(
      new A1111Backend(f.url.replace("http://", "http://bob:hunter2-xyz@"), FAST).generate({ prompt: "x", n: 1, params: { steps: 1 } }),
    );
    expect(ok[0]?.ok).toBe(true);
    expect(f.log[0]?.authorization).toBe(`Basic ${Buffer.from("bob:hunter2-xyz").toString("base64")}`);
    const viaSpec = createBackend({ kind: "a1111", url: f.url, auth: "bob:hunter2-xyz", options: { ...FAST } });
    expect(viaSpec.id).toBe(`a1111@${f.url}`);
    expect((await viaSpec.check()).ok).toBe(true);

    const wrong = new A1111Backend(f.url, { ...FAST, auth: "bob:nope-pw" });
    const err = await rejection(collect(wrong.generate({ prompt: "x", n: 1 })));
    expect(err.code).toBe("BACKEND_AUTH");
    expect(err.message).toBe(
      `a1111@${f.url} refused the credentials given for POST /sdapi/v1/txt2img (HTTP 401: HTTPException: Incorrect username or password); ` +
        "expected a user:password (or Authorization header value) the server accepts, through the URL or the auth option " +
        "(on the command line: --auth-file <file>, the PICKRANK_AUTH environment variable or --auth)",
    );
    expect(JSON.stringify(err.details)).not.toContain("nope-pw");
    // check() says the same, so the CLI can tell refused credentials from a server that is down.
    const health = await wrong.check();
    expect(health).toMatchObject({ ok: false, error: { code: "BACKEND_AUTH" } });
    expect(JSON.stringify(health)).not.toContain("nope-pw");

    const none = await rejection(collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 1 })));
    expect(none.code).toBe("BACKEND_AUTH");
    expect(none.message).toContain("asks for credentials for POST /sdapi/v1/txt2img (HTTP 401: Not authenticated) and none were given");
  });

  it("throws the server's own message when the first request is rejected", async () => {
    const f = await fake();
    const e1 = await rejection(collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 2, params: { sampler: "Nope" } })));
    expect(e1).toMatchObject({ code: "BACKEND_REJECTED", details: { status: 404 } });
    expect(e1.message).toContain("HTTP 404: HTTPException: Sampler not found");
    const e2 = await rejection(
      collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 1, params: { extra: { width: "wide" } } })),
    );
    expect(e2.message).toContain("HTTP 422: invalid request: body.width: Input should be a valid integer");
  });

  it("a render failing mid-run fails that candidate and keeps going", async () => {
    const f = await fake({ faults: { failSeeds: [2] } });
    const got = await collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 3, seed: 1, params: { steps: 1 } }));
    expect(got.map((g) => g.ok)).toEqual([true, false, true]);
    expect(!got[1]!.ok && got[1]!.error.message).toMatch(/HTTP 500: OutOfMemoryError: CUDA out of memory/);
  });

  it("a server dying mid-run fails the rest as unreachable instead of hanging", async () => {
    const f = await fake({ faults: { killOnRequest: 2 } });
    const got = await collect(new A1111Backend(f.url, FAST).generate({ prompt: "x", n: 3, seed: 1, params: { steps: 4 } }));
    expect(got.map((g) => (g.ok ? "ok" : g.error.code))).toEqual(["ok", "BACKEND_UNREACHABLE", "BACKEND_UNREACHABLE"]);
  });

  it("cancellation interrupts the render on the server and sends nothing more", async () => {
    const f = await fake({ stepDelayMs: 10 });
    const ac = new AbortController();
    const got: Generated[] = [];
    // Cancel once the server reports it is rendering the second candidate.
    const onEvent = (e: BackendEvent): void => {
      if (e.type === "progress" && Number(e.key) === 1) ac.abort();
    };
    const b = new A1111Backend(f.url, { ...FAST, progressIntervalMs: 10 });
    const err = await rejection(
      (async () => {
        for await (const g of b.generate({ prompt: "x", n: 3, seed: 1, signal: ac.signal, params: { steps: 8 }, onEvent })) got.push(g);
      })(),
    );
    expect(err.code).toBe("ABORTED");
    expect(got.map((g) => Number(g.key))).toEqual([0]);
    expect(f.interrupts).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    expect(f.requests).toHaveLength(2);
  });

  it("does not count as the server's silence the time pickrank itself was held up (a blocked event loop)", async () => {
    // The render takes about 10 × 20 ms, well under the 400 ms limit; 60 ms in, this process is blocked for 800 ms. On
    // waking, the request's timer is due before the render's last steps: it must not take the time held up as the server's.
    const f = await fake({ stepDelayMs: 20 });
    const b = new A1111Backend(f.url, { ...FAST, generationTimeoutMs: 400 });
    const run = collect(b.generate({ prompt: "x", n: 1, seed: 3, params: { steps: 10 } }));
    setTimeout(() => {
      const until = Date.now() + 800;
      while (Date.now() < until) {}
    }, 60);
    const got = await run;
    expect(got.map((g) => (g.ok ? g.seed : g.error.message))).toEqual([3]);
  });

  it("times out on a hanging server and reports garbage and unreachable servers", async () => {
    const hang = await fake({ faults: { hang: ["txt2img"] } });
    const e1 = await rejection(collect(new A1111Backend(hang.url, { ...FAST, generationTimeoutMs: 300 }).generate({ prompt: "x", n: 1 })));
    expect(e1.code).toBe("TIMEOUT");
    expect(e1.message).toContain("did not answer POST /sdapi/v1/txt2img within 300 ms");

    const junk = await fake({ faults: { garbage: ["txt2img"] } });
    const e2 = await rejection(collect(new A1111Backend(junk.url, FAST).generate({ prompt: "x", n: 1 })));
    expect(e2.code).toBe("BACKEND_PROTOCOL");
    expect(e2.message).toMatch(/not JSON \("<!DOCTYPE html>/);

    const gone = await fake();
    await gone.kill();
    const e3 = await rejection(collect(new A1111Backend(gone.url, FAST).generate({ prompt: "x", n: 1 })));
    expect(e3.code).toBe("BACKEND_UNREACHABLE");
    expect(e3.message).toContain(`a1111@${gone.url}`);
  });
});

describe("A1111Backend.check / listCheckpoints", () => {
  it("reports the loaded checkpoint and the model list", async () => {
    const f = await fake();
    const b = new A1111Backend(f.url, FAST);
    expect(await b.check()).toMatchObject({ ok: true, kind: "a1111", checkpoint: "v1-5-pruned-emaonly.safetensors [6ce0161689]" });
    expect(await b.listCheckpoints()).toEqual(["v1-5-pruned-emaonly.safetensors [6ce0161689]", "sd_xl_base_1.0.safetensors [31e35c80fc]"]);
    await f.kill();
    expect((await b.check()).ok).toBe(false);
  });
});

/**
 * The queue package: the Redis URL (redaction, refusals), job ids, the embedding's wire form, errors
 * through BullMQ's failedReason; then a worker and a coordinator in this process on a real Redis
 * (Debian's redis-server on a free loopback port) with the in-memory backend and a stand-in scorer:
 * images by reference through a shared folder, the later prompts of a plan enqueued ahead and each
 * rendered once, failures and a model mismatch reported per candidate with their codes.
 */
import { createHash } from "node:crypto";
import { getEventListeners } from "node:events";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import { Scorer } from "@pickrank/core";
import { bestOf } from "@pickrank/selector";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect } from "../../../test/helpers/async.ts";
import { MemoryBackend, renderSeed } from "../../../test/helpers/memory-backend.ts";
import { haveRedis, startRedis, type TestRedis } from "../../../test/helpers/redis.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import {
  QueueBackend,
  RenderWorker,
  decodeEmbedding,
  encodeEmbedding,
  errorFromReason,
  failureReason,
  modelKey,
  redactRedisUrl,
  redisConnection,
  renderJobId,
  withWorkerEmbeddings,
  type RenderJobData,
} from "../src/index.ts";

const DIMS = 4;
const manifest = (sha = "aa") => ({ dtype: "fp32", source: { files: [{ name: "model.safetensors", sha256: sha }] } });

/** A stand-in scorer: a unit vector from the image bytes' hash (what matters here is that it travels intact). */
function stubScorer(sha = "aa") {
  const calls: number[] = [];
  return {
    manifest: manifest(sha),
    calls,
    embed(b: Buffer): Float32Array {
      const h = createHash("sha256").update(b).digest();
      const v = Float32Array.from({ length: DIMS }, (_, i) => h[i]! + 1);
      const norm = Math.hypot(...v);
      return v.map((x) => x / norm);
    },
    async embedImages(images: Buffer[]): Promise<Float32Array[]> {
      calls.push(images.length);
      return images.map((b) => this.embed(b));
    },
  };
}

describe("queue: connection, job ids, wire forms", () => {
  it("redacts the password of a Redis URL and keeps the rest", () => {
    expect(redactRedisUrl("rediss://user:p%40ss@redis.example:6380/2")).toBe("rediss://user:***@redis.example:6380/2");
    expect(redactRedisUrl("redis://127.0.0.1:6379")).toBe("redis://127.0.0.1:6379");
  });

  it("BAD CALL - a URL that is not redis:// or rediss:// is BAD_INPUT naming the flag, without the password", () => {
    let err: unknown;
    try {
      redisConnection("http://u:hunter2@host:6379", "--queue");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PickrankError);
    expect((err as PickrankError).code).toBe("BAD_INPUT");
    expect((err as PickrankError).message).toContain("--queue");
    expect((err as PickrankError).message).not.toContain("hunter2");
    expect(() => redisConnection("redis://host:6379/x")).toThrow(/database number/);
    expect(redisConnection("rediss://:pw@host:6380/1").url).toBe("rediss://:pw@host:6380/1");
  });

  it("job ids depend on what is rendered, not on the order of the settings", () => {
    const d: RenderJobData = { prompt: "a cat", seed: 7, params: { steps: 20, cfgScale: 7 }, model: "m1" };
    const id = renderJobId("pickrank", d);
    expect(id).toMatch(/^r[0-9a-f]{32}$/);
    expect(renderJobId("pickrank", { ...d, params: { cfgScale: 7, steps: 20 } })).toBe(id);
    for (const other of [
      renderJobId("pickrank", { ...d, seed: 8 }),
      renderJobId("pickrank", { ...d, prompt: "a dog" }),
      renderJobId("pickrank", { ...d, params: { steps: 4, cfgScale: 7 } }),
      renderJobId("pickrank", { ...d, negativePrompt: "blurry" }),
      renderJobId("pickrank", { ...d, model: "m2" }),
      renderJobId("other", d),
    ])
      expect(other).not.toBe(id);
  });

  it("embeddings travel bit-exact; a wrong length is BACKEND_PROTOCOL", () => {
    const e = Float32Array.from([0.1, -0.2, 1 / 3, Math.PI]);
    expect(Array.from(decodeEmbedding(encodeEmbedding(e), 4))).toEqual(Array.from(e));
    expect(() => decodeEmbedding(encodeEmbedding(e), 5)).toThrow(expect.objectContaining({ code: "BACKEND_PROTOCOL" }));
  });

  it("a worker's error comes back with its code; an unknown reason is BACKEND_PROTOCOL", () => {
    const e = errorFromReason(failureReason(new PickrankError("BACKEND_REJECTED", "bad node 6")), 3);
    expect([e.code, e.message]).toEqual(["BACKEND_REJECTED", "bad node 6"]);
    expect(errorFromReason("socket hang up", 3).code).toBe("BACKEND_PROTOCOL");
    expect(modelKey(manifest("aa"))).not.toBe(modelKey(manifest("bb")));
  });
});

describe.skipIf(!haveRedis)("queue: a worker and a coordinator on a real Redis", () => {
  let redis: TestRedis;
  let shared: string;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    shared = await mkdtemp(path.join(os.tmpdir(), "pickrank-shared-"));
  });

  afterAll(async () => {
    for (const c of closers.reverse()) await c();
    await redis?.stop();
    await removeTinyModels();
    if (shared) await rm(shared, { recursive: true, force: true });
  });

  function setup(
    queueName: string,
    o: { backend?: MemoryBackend; workerModel?: string; sharedDir?: string; plan?: string[]; n?: number; pollMs?: number } = {},
  ) {
    const backend = o.backend ?? new MemoryBackend();
    const scorer = stubScorer(o.workerModel ?? "aa");
    const connection = redisConnection(redis.url);
    const worker = RenderWorker.start({
      connection,
      queueName,
      backend,
      scorer,
      concurrency: 2,
      ...(o.sharedDir ? { sharedDir: o.sharedDir } : {}),
      name: "w1",
    });
    const q = new QueueBackend({
      connection,
      queueName,
      model: modelKey(manifest("aa")),
      dims: DIMS,
      attempts: 1,
      pollMs: o.pollMs ?? 200,
      ...(o.sharedDir ? { sharedDir: o.sharedDir } : {}),
      ...(o.plan ? { plan: { prompts: o.plan, n: o.n ?? 2 } } : {}),
    });
    closers.push(
      () => q.close(),
      () => worker.close(true),
    );
    return { backend, scorer, worker, q };
  }

  it("images by reference through the shared folder, removed once collected; the workers' embeddings reach the scorer", async () => {
    const { scorer, q } = setup("byref", { sharedDir: shared });
    const got = await collect(q.generate({ prompt: "a cat", n: 3, seeds: [5, 6, 7], params: { steps: 20 } }));
    expect(got.map((g) => g.ok && g.key)).toEqual(expect.arrayContaining(["0", "1", "2"]));
    const local = stubScorer();
    for (const g of got) {
      if (!g.ok) throw g.error;
      expect(g.image.equals(await renderSeed(g.seed, 20, 64, "png"))).toBe(true);
      expect(Array.from(q.embeddings.get(g.image)!)).toEqual(Array.from(local.embed(g.image)));
    }
    // The selector's scorer answers from the workers' embeddings and asks its own only for other images.
    const mine = stubScorer();
    const wrapped = withWorkerEmbeddings(mine, q.embeddings);
    const other = await renderSeed(99, 20, 64, "png");
    const e = await wrapped.embedImages([...got.map((g) => (g.ok ? g.image : Buffer.alloc(0))), other]);
    expect(e).toHaveLength(4);
    expect(mine.calls).toEqual([1]);
    expect(scorer.calls.length).toBe(3);
    expect(await readdir(shared)).toEqual([]);
  });

  it("generate leaves no listener on the caller's signal, however often a finished job woke it", async () => {
    // Sweeps 5 s apart: the jobs are collected as their events wake the loop, each wake ending a nap.
    const { q } = setup("naps", { pollMs: 5000 });
    const ctl = new AbortController();
    const got = await collect(q.generate({ prompt: "a cat", n: 12, seed: 1, params: {}, signal: ctl.signal }));
    expect(got.filter((g) => g.ok)).toHaveLength(12);
    expect(getEventListeners(ctl.signal, "abort")).toHaveLength(0);
  });

  it("the plan's later prompts are enqueued ahead, and each (prompt, seed) is rendered once", async () => {
    const prompts = ["p0", "p1", "p2"];
    const { backend, q } = setup("plan", { plan: prompts, n: 2 });
    for (const prompt of prompts) {
      const got = await collect(q.generate({ prompt, n: 2, seeds: [10, 11], keys: ["0", "1"], params: {} }));
      expect(got.every((g) => g.ok)).toBe(true);
    }
    expect(backend.requests.map((r) => `${r.prompt}/${r.seeds?.join()}`).sort()).toEqual(
      ["p0/10", "p0/11", "p1/10", "p1/11", "p2/10", "p2/11"].sort(),
    );
  });

  it("bestOf with draft-then-refine over the queue: the drafts of every prompt ahead, then only the best k at full settings", async () => {
    const model = await tinyModel();
    const scorer = await Scorer.create({ model, device: "cpu" });
    closers.push(() => scorer.dispose());
    const backend = new MemoryBackend();
    const connection = redisConnection(redis.url);
    const worker = RenderWorker.start({ connection, queueName: "refine", backend, scorer, name: "w" });
    const prompts = ["a red fox", "a blue bird"];
    const draft = { steps: 2 };
    const q = new QueueBackend({
      connection,
      queueName: "refine",
      model: modelKey(scorer.manifest),
      dims: scorer.manifest.dims.projection,
      pollMs: 200,
      plan: { prompts, n: 4, params: { ...draft } },
    });
    closers.push(
      () => q.close(),
      () => worker.close(true),
    );
    const r = await bestOf({
      prompts,
      n: 4,
      seed: 50,
      params: { steps: 8 },
      refine: { draft, k: 2 },
      backend: q,
      scorer: withWorkerEmbeddings(scorer, q.embeddings),
    });
    if (!("runs" in r)) throw new Error("expected a batch result");
    expect(r.outcome).toBe("complete");
    const steps = backend.requests.map((x) => `${x.prompt}/${x.params?.steps}`);
    expect(steps.filter((x) => x.endsWith("/2")).sort()).toEqual([...Array(4).fill("a blue bird/2"), ...Array(4).fill("a red fox/2")]);
    expect(steps.filter((x) => x.endsWith("/8")).sort()).toEqual(["a blue bird/8", "a blue bird/8", "a red fox/8", "a red fox/8"]);
    // The same ranking as the scorer gives locally: the workers' embeddings are its own.
    for (const run of r.runs) for (const c of run.ranked) expect(c.embedding).toBeDefined();
    const local = await bestOf({
      prompts,
      n: 4,
      seed: 50,
      params: { steps: 8 },
      refine: { draft, k: 2 },
      backend: new MemoryBackend(),
      scorer,
    });
    if (!("runs" in local)) throw new Error("expected a batch result");
    expect(r.runs.map((x) => x.ranked.map((c) => [c.seed, c.score]))).toEqual(
      local.runs.map((x) => x.ranked.map((c) => [c.seed, c.score])),
    );
  });

  it("EXPECTED FAILURE - a failed render and a worker with another model come back per candidate with their codes", async () => {
    const { q } = setup("fail", { backend: new MemoryBackend({ failSeeds: [21] }) });
    const got = await collect(q.generate({ prompt: "x", n: 2, seeds: [20, 21], params: {} }));
    const failed = got.find((g) => !g.ok);
    expect(got.filter((g) => g.ok)).toHaveLength(1);
    expect(failed && !failed.ok && failed.error.code).toBe("BACKEND_REJECTED");

    const other = setup("model", { workerModel: "bb" });
    const [g] = await collect(other.q.generate({ prompt: "x", n: 1, seeds: [1], params: {} }));
    expect(g && !g.ok && g.error.code).toBe("BAD_MODEL");
    expect(g && !g.ok && g.error.message).toContain("--model");
  });

  it("rediss:// with a password and the server's certificate authority: a job goes through TLS", async () => {
    const tls = await startRedis({ tls: true, password: "tls-pw" });
    closers.push(() => tls.stop());
    expect(tls.url.startsWith("rediss://:tls-pw@")).toBe(true);
    const connection = redisConnection(tls.url, "--queue", { ca: tls.ca! });
    const worker = RenderWorker.start({ connection, queueName: "tls", backend: new MemoryBackend(), scorer: stubScorer(), name: "w" });
    const q = new QueueBackend({ connection, queueName: "tls", model: modelKey(manifest("aa")), dims: DIMS, pollMs: 200 });
    closers.push(
      () => q.close(),
      () => worker.close(true),
    );
    const got = await collect(q.generate({ prompt: "over tls", n: 2, seeds: [3, 4], params: {} }));
    expect(got.map((g) => g.ok && g.seed).sort()).toEqual([3, 4]);
    expect(() => redisConnection("redis://h:6379", "--queue", { ca: "x" })).toThrow(/rediss:\/\//);
  });

  it("a queue no worker listens on: a warning names it and how to start one; the jobs wait (no error)", async () => {
    const q = new QueueBackend({ connection: redisConnection(redis.url), queueName: "lonely", model: "m", dims: DIMS, pollMs: 200 });
    closers.push(() => q.close());
    const ac = new AbortController();
    const warnings: string[] = [];
    const run = collect(
      q.generate({
        prompt: "a cat",
        n: 1,
        seed: 1,
        signal: ac.signal,
        onEvent: (e) => {
          if (e.type === "warning") {
            warnings.push(e.message);
            ac.abort();
          }
        },
      }),
    );
    await expect(run).rejects.toMatchObject({ code: "ABORTED" });
    expect(warnings).toEqual([
      'no worker listens on queue "lonely" yet: its jobs wait until one starts (pickrank worker --queue <redis url> --queue-name lonely …)',
    ]);
  });

  it("EXPECTED FAILURE - a Redis that does not answer is a failed check (BACKEND_UNREACHABLE), not a hang", async () => {
    const q = new QueueBackend({ connection: redisConnection("redis://127.0.0.1:9"), model: "m", dims: DIMS });
    closers.push(() => q.close());
    const ctl = new AbortController();
    const h = await q.check(ctl.signal);
    expect(h.ok).toBe(false);
    expect(h.error?.code).toBe("BACKEND_UNREACHABLE");
  });
});

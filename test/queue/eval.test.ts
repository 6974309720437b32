/**
 * `pickrank eval run --queue` into the same store as a local run: two configurations, each rendered by
 * a worker of its own queue (`pickrank-<config>`, here in this process, bound to its own fake server),
 * against the same command run locally on those servers: the same rows, scores equal, every candidate
 * rendered once.
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createBackend } from "@pickrank/adapters";
import { Scorer } from "@pickrank/core";
import { EvalStore, STORE_FILE } from "@pickrank/eval";
import { modelKey, RenderWorker, redisConnection } from "@pickrank/queue";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeA1111, type FakeA1111 } from "../fakes/a1111-server.ts";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { runCli } from "../helpers/cli.ts";
import { haveRedis, startRedis, type TestRedis } from "../helpers/redis.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

describe.skipIf(!haveRedis)("eval run --queue", () => {
  let redis: TestRedis;
  let comfy: FakeComfyUI;
  let a1111: FakeA1111;
  let model: string;
  let tmp: string;

  beforeAll(async () => {
    [redis, comfy, a1111, model] = await Promise.all([startRedis(), startFakeComfyUI(), startFakeA1111(), tinyModel()]);
    tmp = await mkdtemp(path.join(os.tmpdir(), "pickrank-eval-queue-"));
  });
  afterAll(async () => {
    await Promise.all([redis?.stop(), comfy?.close(), a1111?.close(), removeTinyModels()]);
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const rowsOf = async (out: string) => {
    const store = await EvalStore.open(path.join(out, STORE_FILE));
    const rows = await store.candidates();
    await store.close();
    return rows.map((r) => [r.config, r.promptId, r.seedIndex, r.seed, r.score]).sort((a, b) => String(a).localeCompare(String(b)));
  };

  it("two configurations on their workers' queues fill the store as a local run does", { timeout: 600_000 }, async () => {
    const scorer = await Scorer.create({ model, device: "cpu" });
    const connection = redisConnection(redis.url);
    const workers = [
      RenderWorker.start({ connection, queueName: "pickrank-comfy", backend: createBackend({ kind: "comfyui", url: comfy.url }), scorer }),
      RenderWorker.start({ connection, queueName: "pickrank-a1111", backend: createBackend({ kind: "a1111", url: a1111.url }), scorer }),
    ];
    const base = ["eval", "run", "--prompts", "parti", "--limit", "6", "-n", "3", "--seed", "5", "--model", model, "--device", "cpu"];
    const queued = path.join(tmp, "queued");
    const configs = ["--config", "name=comfy,steps=3", "--config", "name=a1111,backend=a1111,steps=3"];
    try {
      const r = await runCli([...base, ...configs, "--queue", redis.url, "--bootstrap", "50", "--out", queued, "--quiet", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.json<{ counts: { scored: number } }>().counts.scored).toBe(36);
    } finally {
      await Promise.all(workers.map((w) => w.close()));
      await scorer.dispose();
    }
    expect(comfy.prompts).toHaveLength(18);
    expect(a1111.requests).toHaveLength(18);
    expect(modelKey(scorer.manifest)).toMatch(/^[0-9a-f]{16}$/);

    const local = path.join(tmp, "local");
    const localConfigs = [
      "--config",
      `name=comfy,url=${comfy.url},steps=3`,
      "--config",
      `name=a1111,backend=a1111,url=${a1111.url},steps=3`,
    ];
    const l = await runCli([...base, ...localConfigs, "--bootstrap", "50", "--out", local, "--quiet", "--json"]);
    expect(l.code, l.stderr).toBe(0);
    const [q, loc] = [await rowsOf(queued), await rowsOf(local)];
    expect(q).toHaveLength(36);
    expect(q).toEqual(loc);
  });
});

/**
 * best-of over a real Redis with workers in separate processes (the real bin), against three fake
 * ComfyUI servers (one per worker, as each machine has its own) and the tiny model. One run goes
 * through every fault in turn: a worker killed with SIGKILL mid-run, Redis restarted mid-run (its
 * append-only file keeps the queue), the coordinator killed with SIGKILL and started again with the
 * same command. At the end every (prompt, seed) is a candidate exactly once, with the scores a local
 * run over the same servers gives, and the password of the Redis URL was never printed.
 * No wall-clock assertion: every wait is on progress, with generous limits.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeComfyUI, type FakeComfyUI } from "../fakes/comfyui-server.ts";
import { waitFor } from "../helpers/async.ts";
import { journalCandidates } from "../helpers/best-of.ts";
import { runCli, spawnCli, type CliProcess } from "../helpers/cli.ts";
import { haveRedis, startRedis, type TestRedis } from "../helpers/redis.ts";
import { removeTinyModels, tinyModel } from "../helpers/tiny-model.ts";

const PROMPTS = 50;
const N = 4;
const SEED = 1000;
const PASSWORD = "s3cret-pw";

interface Ranked {
  seed: number;
  index: number;
  score: number;
}
interface Run {
  prompt: string;
  ranked: Ranked[];
  failed: unknown[];
}

describe.skipIf(!haveRedis)("best-of --queue: three workers, one coordinator, real Redis", () => {
  let redis: TestRedis;
  let fakes: FakeComfyUI[];
  let model: string;
  let dir: string;
  const workers: CliProcess[] = [];

  beforeAll(async () => {
    [redis, fakes, model] = await Promise.all([
      startRedis({ appendonly: true, password: PASSWORD }),
      Promise.all([0, 1, 2].map(() => startFakeComfyUI({ stepDelayMs: 4 }))),
      tinyModel(),
    ]);
    dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-queue-"));
    const lines = Array.from({ length: PROMPTS }, (_, i) => `prompt number ${i}, a lighthouse in style ${i % 7}`);
    await writeFile(path.join(dir, "prompts.txt"), `${lines.join("\n")}\n`);
  });

  afterAll(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill("SIGKILL");
    await Promise.all([redis?.stop(), ...(fakes ?? []).map((f) => f.close()), removeTinyModels()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const worker = (i: number): CliProcess =>
    spawnCli([
      "worker",
      "--queue",
      redis.url,
      "--url",
      fakes[i]!.url,
      "--model",
      model,
      "--device",
      "cpu",
      "--name",
      `w${i}`,
      "--concurrency",
      "2",
      // Short locks so a killed worker's jobs are retaken within seconds (defaults: 30 s); BullMQ renews a lock every
      // half its duration, so a live worker held up for up to 3 s on a loaded machine keeps its jobs (at 2 s: 1 s).
      "--lock-duration",
      "6",
      "--stalled-interval",
      "2",
    ]);

  const coordinator = (out: string): CliProcess =>
    spawnCli([
      "best-of",
      "--prompts",
      path.join(dir, "prompts.txt"),
      "-n",
      String(N),
      "--seed",
      String(SEED),
      "--steps",
      "20",
      "--queue",
      redis.url,
      "--model",
      model,
      "--device",
      "cpu",
      "--keep",
      "all",
      "--out",
      out,
      "--json",
    ]);

  it("finishes a 50-prompt run through a worker kill, a Redis restart and a coordinator kill, every candidate once", async () => {
    const out = path.join(dir, "out");
    for (const i of [0, 1, 2]) workers.push(worker(i));
    await waitFor(() => workers.every((w) => w.stderr().includes("serving pickrank")), "three workers ready", 120_000);

    let coord = coordinator(out);
    // A worker killed mid-run: its jobs' locks expire and the others take them over.
    await waitFor(async () => (await journalCandidates(out)) >= 20, "20 candidates journaled", 240_000);
    workers[2]!.proc.kill("SIGKILL");
    // Redis restarted mid-run: workers and coordinator reconnect; the append-only file kept the queue.
    await waitFor(async () => (await journalCandidates(out)) >= 60, "60 candidates journaled", 240_000);
    await redis.restart();
    // The coordinator killed mid-run, then started again with the same command: it resumes.
    await waitFor(async () => (await journalCandidates(out)) >= 110, "110 candidates journaled", 240_000);
    coord.proc.kill("SIGKILL");
    const killed = await coord.done;
    expect(killed.signal).toBe("SIGKILL");
    coord = coordinator(out);
    const r = await coord.done;
    expect(r.code, r.stderr).toBe(0);

    const result = r.json<{ runs: Run[]; errors: unknown[]; outcome: string; out: { resumed: number } }>();
    expect(result.outcome).toBe("complete");
    expect(result.errors).toEqual([]);
    expect(result.runs).toHaveLength(PROMPTS);
    expect(result.out.resumed).toBeGreaterThan(0);
    for (const run of result.runs) {
      expect(run.failed).toEqual([]);
      expect(run.ranked.map((c) => c.seed).sort((a, b) => a - b)).toEqual([SEED, SEED + 1, SEED + 2, SEED + 3]);
    }
    // The killed worker had taken jobs it never finished (its server got more prompts than it reported done): others finished them.
    const doneByKilled = workers[2]!
      .stderr()
      .split("\n")
      .filter((l) => l.includes("rendered in")).length;
    expect(fakes[2]!.prompts.length).toBeGreaterThan(doneByKilled);
    // Exactly one journaled candidate per (prompt, seed): nothing lost, nothing twice.
    expect(await journalCandidates(out)).toBe(PROMPTS * N);

    // The scores of a local run over the same servers (the workers' embeddings are the local scorer's own).
    const local = await runCli([
      "best-of",
      "--prompts",
      path.join(dir, "prompts.txt"),
      "-n",
      String(N),
      "--seed",
      String(SEED),
      "--steps",
      "20",
      ...fakes.slice(0, 2).flatMap((f) => ["--url", f.url]),
      "--model",
      model,
      "--device",
      "cpu",
      "--json",
      "--quiet",
    ]);
    expect(local.code, local.stderr).toBe(0);
    const localRuns = local.json<{ runs: Run[] }>().runs;
    const scores = (runs: Run[]) => runs.map((x) => x.ranked.map((c) => [c.seed, c.score]).sort((a, b) => a[0]! - b[0]!));
    expect(scores(result.runs)).toEqual(scores(localRuns));

    // SIGTERM drains the live workers: they exit 0 after "stopped".
    const live = workers.slice(0, 2);
    for (const w of live) w.proc.kill("SIGTERM");
    for (const w of live) {
      const d = await w.done;
      expect(d.code, d.stderr).toBe(0);
      expect(d.stderr).toContain("stopped");
    }
    // The password of the Redis URL was never printed.
    for (const text of [killed.stderr, r.stderr, ...workers.map((w) => w.stderr() + w.stdout())]) expect(text).not.toContain(PASSWORD);
    const resultJson = await readFile(path.join(out, "result.json"), "utf8");
    expect(resultJson).not.toContain(PASSWORD);
  }, 900_000);
});

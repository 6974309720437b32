/**
 * Throughput of best-of over the queue against the number of workers (`pnpm bench:queue`). Each worker
 * is a `pickrank worker` process with its own fake ComfyUI server that takes a fixed time per image
 * (steps × step delay), as each machine has its own GPU; the coordinator runs bestOf in this process
 * with the tiny model. Prints images/s for 1, 2, 4 … workers and the ratio to one worker, then the
 * queue's own cost per job (latency and throughput) with rendering and scoring taken out. A real Redis
 * (Debian's redis-server) on a free loopback port.
 *
 *   pnpm bench:queue [--workers 1,2,4] [--prompts 30] [--n 4] [--image-ms 200] [--overhead-jobs 100]
 */
import { parseArgs } from "node:util";
import type { Backend, GenerateRequest } from "@pickrank/contract";
import { Scorer } from "@pickrank/core";
import { bestOf } from "@pickrank/selector";
import { startFakeComfyUI, type FakeComfyUI } from "../../../test/fakes/comfyui-server.ts";
import { spawnCli, type CliProcess } from "../../../test/helpers/cli.ts";
import { startRedis, type TestRedis } from "../../../test/helpers/redis.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import { modelKey, QueueBackend, RenderWorker, redisConnection, withWorkerEmbeddings } from "../src/index.ts";

const { values: args } = parseArgs({
  options: {
    workers: { type: "string", default: "1,2,4" },
    prompts: { type: "string", default: "30" },
    n: { type: "string", default: "4" },
    "image-ms": { type: "string", default: "200" },
    "overhead-jobs": { type: "string", default: "100" },
  },
});
const WORKERS = args.workers.split(",").map(Number);
const PROMPTS = Number(args.prompts);
const N = Number(args.n);
const STEPS = 20;
const STEP_MS = Number(args["image-ms"]) / STEPS;

async function startWorkers(
  redis: TestRedis,
  fakes: FakeComfyUI[],
  model: string,
  queueName: string,
  extra: string[] = [],
): Promise<CliProcess[]> {
  const ws = fakes.map((f, i) =>
    spawnCli([
      "worker",
      "--queue",
      redis.url,
      "--queue-name",
      queueName,
      "--url",
      f.url,
      "--model",
      model,
      "--device",
      "cpu",
      "--name",
      `w${i}`,
      "--quiet",
      ...extra,
    ]),
  );
  const deadline = performance.now() + 180_000;
  while (!ws.every((w) => w.stderr().includes("serving"))) {
    if (performance.now() > deadline || ws.some((w) => w.proc.exitCode !== null)) throw new Error(ws.map((w) => w.stderr()).join("\n"));
    await new Promise((r) => setTimeout(r, 200));
  }
  return ws;
}

async function stopWorkers(ws: CliProcess[]): Promise<void> {
  for (const w of ws) w.proc.kill("SIGTERM");
  await Promise.all(ws.map((w) => w.done));
}

/** One bestOf run of `prompts` × n over the queue; returns the wall time (ms) of the run alone. */
async function queuedRun(
  redis: TestRedis,
  scorer: Scorer,
  queueName: string,
  prompts: string[],
  n: number,
  steps: number,
): Promise<number> {
  const q = new QueueBackend({
    connection: redisConnection(redis.url),
    queueName,
    model: modelKey(scorer.manifest),
    dims: scorer.manifest.dims.projection,
    plan: { prompts, n },
    pollMs: 1000,
  });
  try {
    const t = performance.now();
    await bestOf({ prompts, n, seed: 1, params: { steps }, backend: q, scorer: withWorkerEmbeddings(scorer, q.embeddings) });
    return performance.now() - t;
  } finally {
    await q.close();
  }
}

const prompts = (tag: string, count: number) => Array.from({ length: count }, (_, i) => `${tag} prompt ${i}: a lighthouse at dawn`);

/** A backend that renders nothing: a fixed 1 KB image at once, so what is timed is the queue alone. */
function instantBackend(): Backend {
  const image = Buffer.alloc(1024, 7);
  return {
    id: "instant",
    kind: "instant",
    maxSeed: 2 ** 32 - 1,
    fingerprint: () => ({}),
    check: async () => ({ ok: true, backend: "instant", kind: "instant" }),
    close: async () => {},
    async *generate(req) {
      const seeds = req.seeds ?? [0];
      for (const [i, seed] of seeds.entries())
        yield {
          ok: true,
          key: req.keys?.[i] ?? String(i),
          seed,
          image,
          format: "png",
          backend: "instant",
          timings: { queuedMs: 0, renderMs: 0, totalMs: 0 },
        };
    },
  };
}

/**
 * The queue's own cost per job, with rendering and scoring taken out (an instant backend, a stand-in
 * scorer): a worker and a coordinator in this process on the same Redis. Latency: one job at a time,
 * enqueue → worker → collect. Throughput: all jobs enqueued at once, one worker taking 8 at a time.
 */
async function queueOverhead(redis: TestRedis, jobs: number): Promise<void> {
  const manifest = { dtype: "fp32", source: { files: [{ name: "stand-in", sha256: "0" }] } };
  const embedding = new Float32Array(8).fill(1 / Math.sqrt(8));
  const scorer = { manifest, embedImages: async (images: Buffer[]) => images.map(() => embedding) };
  const connection = redisConnection(redis.url);
  const worker = RenderWorker.start({
    connection,
    queueName: "bench-overhead",
    backend: instantBackend(),
    scorer,
    concurrency: 8,
    name: "w",
  });
  await worker.ready();
  const q = new QueueBackend({ connection, queueName: "bench-overhead", model: modelKey(manifest), dims: 8 });
  const drain = async (req: GenerateRequest): Promise<void> => {
    for await (const g of q.generate(req)) if (!g.ok) throw g.error;
  };
  await drain({ prompt: "warm-up", n: 1, seeds: [0] });
  let t = performance.now();
  for (let i = 1; i <= jobs; i++) await drain({ prompt: "latency", n: 1, seeds: [i] });
  const latency = (performance.now() - t) / jobs;
  t = performance.now();
  await drain({ prompt: "throughput", n: jobs, seeds: Array.from({ length: jobs }, (_, i) => i) });
  const perJob = (performance.now() - t) / jobs;
  await q.close();
  await worker.close();
  console.log(`\nthe queue's own cost (${jobs} jobs; no rendering, no scoring: an instant backend and a stand-in scorer)\n`);
  console.log("| measure | ms per job |");
  console.log("| ------- | ---------: |");
  console.log(`| latency: one job at a time, enqueue → worker → collected | ${latency.toFixed(1)} |`);
  console.log(`| throughput: ${jobs} jobs at once, one worker taking 8 at a time | ${perJob.toFixed(1)} |`);
}

async function main(): Promise<void> {
  const [redis, model] = await Promise.all([startRedis(), tinyModel()]);
  const scorer = await Scorer.create({ model, device: "cpu" });
  const rows: string[][] = [];
  const images = PROMPTS * N;
  let base = 0;
  try {
    for (const k of WORKERS) {
      const fakes = await Promise.all(Array.from({ length: k }, () => startFakeComfyUI({ stepDelayMs: STEP_MS })));
      const ws = await startWorkers(redis, fakes, model, `bench-${k}`);
      const ms = await queuedRun(redis, scorer, `bench-${k}`, prompts(`w${k}`, PROMPTS), N, STEPS);
      await stopWorkers(ws);
      await Promise.all(fakes.map((f) => f.close()));
      const ips = images / (ms / 1000);
      if (k === WORKERS[0]) base = ips / k;
      rows.push([
        String(k),
        String(images),
        (ms / 1000).toFixed(1),
        ips.toFixed(2),
        `${(ips / base).toFixed(2)}×`,
        ((1000 / Number(args["image-ms"])) * k).toFixed(2),
      ]);
    }
    console.log(
      `\nbest-of over the queue: ${PROMPTS} prompts × ${N} candidates, ` +
        `fake ComfyUI at ${args["image-ms"]} ms per image, one server per worker\n`,
    );
    console.log("| workers | images | wall s | images/s | vs 1 worker | servers' ceiling images/s |");
    console.log("| ------: | -----: | -----: | -------: | ----------: | ------------------------: |");
    for (const r of rows) console.log(`| ${r.join(" | ")} |`);

    await queueOverhead(redis, Number(args["overhead-jobs"]));
  } finally {
    await scorer.dispose();
    await redis.stop();
    await removeTinyModels();
  }
}

await main();

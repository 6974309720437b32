/**
 * Loopback benchmark of `pickrank serve` (`pnpm bench:serve`): N requests of K images from C
 * concurrent clients against an in-process server, next to sequential `Scorer#rank` calls on the same
 * images in the same process. Prints a table: p50/p99 latency, images/s of each and their ratio (the
 * batching gain), RSS at start and end, 429s. Bounded: it stops after --max-seconds whatever is left.
 *
 *   pnpm bench:serve [--requests 1000] [--clients 16] [--images 8] [--model dir] [--device cpu] [--max-seconds 900]
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { Scorer, type DeviceRequest } from "@pickrank/core";
import sharp from "sharp";
import { referenceDir } from "../../../test/helpers/paths.ts";
import { removeTinyModels, tinyModel } from "../../../test/helpers/tiny-model.ts";
import { startServer } from "../src/index.ts";

const { values: args } = parseArgs({
  options: {
    requests: { type: "string", default: "1000" },
    clients: { type: "string", default: "16" },
    images: { type: "string", default: "8" },
    model: { type: "string" },
    device: { type: "string", default: "cpu" },
    "max-batch": { type: "string", default: "16" },
    "max-wait-ms": { type: "string", default: "5" },
    "max-seconds": { type: "string", default: "900" },
    "baseline-calls": { type: "string", default: "200" },
  },
});
const REQUESTS = Number(args.requests);
const CLIENTS = Number(args.clients);
const PER_REQUEST = Number(args.images);
const DEADLINE = performance.now() + Number(args["max-seconds"]) * 1000;
const SIZE = 256;
const SOURCES = ["tiny_64x48.png", "gray_300x200.png", "rgba_512.png", "photo_768.jpg"];
const PROMPTS = Array.from({ length: 50 }, (_, i) => `benchmark prompt number ${i}: a lighthouse at dawn, oil painting`);

const mb = (n: number): string => `${(n / 2 ** 20).toFixed(0)} MB`;
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

async function baseline(model: string, images: Buffer[]): Promise<{ imagesPerS: number; latencies: number[] }> {
  const scorer = await Scorer.create({ model, device: args.device as DeviceRequest, batchSize: PER_REQUEST });
  try {
    await scorer.rank(PROMPTS[0]!, images); // warm-up
    const calls = Math.min(Number(args["baseline-calls"]), REQUESTS);
    const latencies: number[] = [];
    const t0 = performance.now();
    for (let i = 0; i < calls && performance.now() < DEADLINE; i++) {
      const t = performance.now();
      await scorer.rank(PROMPTS[i % PROMPTS.length]!, images);
      latencies.push(performance.now() - t);
    }
    return { imagesPerS: (latencies.length * PER_REQUEST) / ((performance.now() - t0) / 1000), latencies };
  } finally {
    await scorer.dispose();
  }
}

async function load(
  url: string,
  body: (i: number) => string,
): Promise<{ latencies: number[]; busy: number; failed: Map<number, number>; seconds: number }> {
  const latencies: number[] = [];
  let next = 0;
  let busy = 0;
  const failed = new Map<number, number>(); // status → count
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < REQUESTS && performance.now() < DEADLINE) {
      const i = next++;
      const t = performance.now();
      const res = await fetch(`${url}/v1/rank`, { method: "POST", headers: { "content-type": "application/json" }, body: body(i) });
      await res.arrayBuffer();
      if (res.status === 429) busy++;
      else if (res.status !== 200) failed.set(res.status, (failed.get(res.status) ?? 0) + 1);
      else latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  return { latencies, busy, failed, seconds: (performance.now() - t0) / 1000 };
}

/** "(504: 84, 500: 1)", or "" when nothing failed. */
function failures(byStatus: Map<number, number>): string {
  return byStatus.size === 0 ? "" : `(${[...byStatus].map(([status, n]) => `${status}: ${n}`).join(", ")})`;
}

async function main(): Promise<void> {
  const rssStart = process.memoryUsage().rss;
  const model = args.model ?? (await tinyModel());
  // PER_REQUEST distinct 256×256 PNGs cut from the reference images (noise where ../shared did not
  // travel, as on a lent GPU machine): decoding stays a small share.
  const sources = await Promise.all(
    SOURCES.map((n, i) =>
      readFile(path.join(referenceDir, "images", n)).catch(() =>
        sharp({
          create: {
            width: 512,
            height: 512,
            channels: 3,
            background: { r: 60 * i, g: 90, b: 200 - 40 * i },
            noise: { type: "gaussian", mean: 128, sigma: 40 },
          },
        })
          .png()
          .toBuffer(),
      ),
    ),
  );
  const images = await Promise.all(
    Array.from({ length: PER_REQUEST }, (_, i) =>
      sharp(sources[i % sources.length]!)
        .resize(SIZE, SIZE, { fit: "cover", position: i % 2 ? "left top" : "right bottom" })
        .png()
        .toBuffer(),
    ),
  );
  const b64 = images.map((b) => b.toString("base64"));
  const base = await baseline(model, images);
  const server = await startServer({
    model,
    device: args.device as DeviceRequest,
    port: 0,
    maxBatch: Number(args["max-batch"]),
    maxWaitMs: Number(args["max-wait-ms"]),
  });
  try {
    const body = (i: number): string => JSON.stringify({ prompt: PROMPTS[i % PROMPTS.length], images: b64 });
    // Warm-up: one request (sessions' first runs allocate).
    await (
      await fetch(`${server.url}/v1/rank`, { method: "POST", headers: { "content-type": "application/json" }, body: body(0) })
    ).arrayBuffer();
    const run = await load(server.url!, body);
    const rssEnd = process.memoryUsage().rss;
    const served = run.latencies.length * PER_REQUEST;
    const serveRate = served / run.seconds;
    const hist = await server.metrics.batchSize.get();
    const runs = hist.values.find((v) => v.metricName === "pickrank_batch_size_count")?.value ?? 0;
    const imgs = hist.values.find((v) => v.metricName === "pickrank_batch_size_sum")?.value ?? 0;
    const rows: [string, string][] = [
      ["model", `${path.basename(model)} on ${server.engine.scorer.device}`],
      ["load", `${run.latencies.length}/${REQUESTS} requests × ${PER_REQUEST} PNGs of ${SIZE}², ${CLIENTS} clients, base64 JSON`],
      ["latency p50 / p99", `${quantile(run.latencies, 0.5).toFixed(1)} / ${quantile(run.latencies, 0.99).toFixed(1)} ms`],
      ["server images/s", serveRate.toFixed(0)],
      [
        "sequential Scorer#rank images/s",
        `${base.imagesPerS.toFixed(0)} (${base.latencies.length} calls, p50 ${quantile(base.latencies, 0.5).toFixed(1)} ms)`,
      ],
      ["batching gain (server / sequential)", `${(serveRate / base.imagesPerS).toFixed(2)}×`],
      ["mean vision batch", `${(imgs / Math.max(1, runs)).toFixed(1)} images (${runs} runs, max ${args["max-batch"]})`],
      ["RSS start / end", `${mb(rssStart)} / ${mb(rssEnd)}`],
      ["429s / other failures", `${run.busy} / ${[...run.failed.values()].reduce((a, b) => a + b, 0)} ${failures(run.failed)}`],
    ];
    const w = Math.max(...rows.map((r) => r[0].length));
    process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join("\n")}\n`);
  } finally {
    await server.close();
    await removeTinyModels();
  }
}

await main();

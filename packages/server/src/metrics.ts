/**
 * Prometheus metrics of one server (prom-client, on a registry of its own so that several servers in
 * one process do not mix): requests by route and status, latency and batch-size histograms, queue
 * depth, images scored and images per second, text embeddings computed and served from the cache,
 * plus the process metrics (RSS, event-loop lag, …) prom-client collects by default.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/** Seconds over which `pickrank_images_per_second` averages. */
export const RATE_WINDOW_S = 10;

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"route" | "method" | "status">;
  readonly latency: Histogram<"route">;
  readonly batchSize: Histogram;
  readonly images: Counter;
  readonly textEmbeddings: Counter<"source">;
  readonly rejected: Counter<"code">;
  /** (time ms, images) of recent runs, for the images-per-second gauge. */
  #recent: { t: number; n: number }[] = [];

  constructor(queue: { requests: () => number; images: () => number }, maxBatch: number) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: "pickrank_http_requests_total",
      help: "HTTP requests answered, by route, method and status",
      labelNames: ["route", "method", "status"],
      registers,
    });
    this.latency = new Histogram({
      name: "pickrank_http_request_duration_seconds",
      help: "Time from a request's arrival to its answer",
      labelNames: ["route"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.batchSize = new Histogram({
      name: "pickrank_batch_size",
      help: "Images per vision run (dynamic batching)",
      buckets: batchBuckets(maxBatch),
      registers,
    });
    this.images = new Counter({ name: "pickrank_images_scored_total", help: "Images embedded by vision runs", registers });
    this.textEmbeddings = new Counter({
      name: "pickrank_text_embeddings_total",
      help: "Prompt embeddings asked for, by source: computed by the text graph or served from the cache",
      labelNames: ["source"],
      registers,
    });
    this.rejected = new Counter({
      name: "pickrank_rejected_requests_total",
      help: "Requests refused before any work, by error code (BUSY, PAYLOAD_TOO_LARGE, UNAUTHORIZED, CLOSED, …)",
      labelNames: ["code"],
      registers,
    });
    new Gauge({
      name: "pickrank_queue_requests",
      help: "Requests admitted and not yet answered",
      registers,
      collect() {
        this.set(queue.requests());
      },
    });
    new Gauge({
      name: "pickrank_queue_images",
      help: "Preprocessed images waiting for a vision run",
      registers,
      collect() {
        this.set(queue.images());
      },
    });
    const recent = (): number => this.#rate();
    new Gauge({
      name: "pickrank_images_per_second",
      help: `Images embedded per second over the last ${RATE_WINDOW_S} s`,
      registers,
      collect() {
        this.set(recent());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: "pickrank_" });
  }

  /** Records a vision run of `n` images. */
  observeRun(n: number): void {
    this.batchSize.observe(n);
    this.images.inc(n);
    this.#recent.push({ t: performance.now(), n });
    this.#prune();
  }

  /** Images embedded per second over the last RATE_WINDOW_S seconds. */
  imagesPerSecond(): number {
    return this.#rate();
  }

  #prune(): void {
    const cutoff = performance.now() - RATE_WINDOW_S * 1000;
    while (this.#recent.length > 0 && this.#recent[0]!.t < cutoff) this.#recent.shift();
  }

  #rate(): number {
    this.#prune();
    return this.#recent.reduce((s, r) => s + r.n, 0) / RATE_WINDOW_S;
  }
}

function batchBuckets(maxBatch: number): number[] {
  const b = new Set<number>([1, 2, 4, 8, 16, 32, 64, 128, 256].filter((x) => x < maxBatch));
  b.add(maxBatch);
  return [...b].sort((x, y) => x - y);
}

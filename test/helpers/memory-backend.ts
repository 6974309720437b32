/**
 * An in-memory Backend for selector tests: renders small deterministic PNGs per seed (the pixels
 * depend on the seed, and a little on steps/size so drafts differ from final renders), with knobs
 * for failures, a backend dying mid-run, delays, JPEG output and near-duplicates.
 */
import sharp from "sharp";
import type { Backend, BackendEvent, GenerateRequest, Generated, HealthReport } from "@pickrank/contract";
import { PickrankError } from "@pickrank/contract";

export interface MemoryBackendOptions {
  /** Seeds whose render fails (reported per candidate). */
  failSeeds?: number[];
  /** Throw from generate() after yielding this many candidates (a server dying mid-run). */
  dieAfter?: number;
  /** Throw before yielding anything (unreachable). */
  unreachable?: boolean;
  /** Milliseconds between candidates. */
  delayMs?: number;
  format?: "png" | "jpeg";
  /** seed → seed whose image it copies exactly (near-duplicates for --diverse). */
  duplicateOf?: Record<number, number>;
  /** Bytes that are not an image for these seeds (the scorer must reject them). */
  garbageSeeds?: number[];
  /** Warning events sent before the first candidate (a pool member down …), each as given. */
  warnings?: string[];
  /** What fingerprint() returns (default { kind }): another workflow, another fingerprint. */
  fingerprint?: Record<string, unknown>;
  /** Largest seed accepted (default Number.MAX_SAFE_INTEGER). */
  maxSeed?: number;
  /** Renders the candidate at `index` (of each generate() call) only once `until` settles: a test's event, not a time. */
  holdBefore?: { index: number; until: Promise<unknown> };
  /** Called when generate()'s generator ends (returned, thrown or broken off). */
  onEnd?: () => void;
}

export class MemoryBackend implements Backend {
  readonly id = "memory@local";
  readonly kind = "memory";
  readonly requests: GenerateRequest[] = [];
  readonly rendered: number[] = [];
  closed = false;

  constructor(private readonly o: MemoryBackendOptions = {}) {}

  get maxSeed(): number {
    return this.o.maxSeed ?? Number.MAX_SAFE_INTEGER;
  }

  fingerprint(): Record<string, unknown> {
    return this.o.fingerprint ?? { kind: this.kind };
  }

  async check(): Promise<HealthReport> {
    return { ok: !this.o.unreachable, backend: this.id, kind: this.kind };
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async *generate(req: GenerateRequest): AsyncIterable<Generated> {
    this.requests.push({ ...req, signal: undefined, onEvent: undefined });
    if (this.o.unreachable) throw new PickrankError("BACKEND_UNREACHABLE", "Could not reach memory backend; expected it to be running");
    const seeds = req.seeds ?? Array.from({ length: req.n }, (_, i) => (req.seed ?? 0) + i);
    const keys = req.keys ?? seeds.map((_, i) => String(i));
    const emit = (e: BackendEvent) => req.onEvent?.(e);
    try {
      for (const message of this.o.warnings ?? []) emit({ type: "warning", backend: this.id, message, code: "BACKEND_UNREACHABLE" });
      yield* this.render(req, seeds, keys, emit);
    } finally {
      this.o.onEnd?.();
    }
  }

  private async *render(req: GenerateRequest, seeds: number[], keys: string[], emit: (e: BackendEvent) => void): AsyncGenerator<Generated> {
    for (let i = 0; i < seeds.length; i++) {
      if (req.signal?.aborted) throw new PickrankError("ABORTED", "generation aborted", { cause: req.signal.reason });
      if (this.o.dieAfter !== undefined && i >= this.o.dieAfter) {
        throw new PickrankError("BACKEND_UNREACHABLE", "memory backend went away mid-run; expected it to stay up");
      }
      const seed = seeds[i]!;
      emit({ type: "queued", backend: this.id, key: keys[i]!, seed });
      if (this.o.delayMs) await sleep(this.o.delayMs, req.signal);
      if (this.o.holdBefore?.index === i) await this.o.holdBefore.until.catch(() => undefined);
      if (this.o.failSeeds?.includes(seed)) {
        const error = new PickrankError("BACKEND_REJECTED", `render of seed ${seed} failed`);
        emit({ type: "candidate-failed", backend: this.id, key: keys[i]!, seed, error });
        yield { ok: false, key: keys[i]!, seed, backend: this.id, error };
        continue;
      }
      const image = this.o.garbageSeeds?.includes(seed)
        ? Buffer.from("not an image at all")
        : await renderSeed(this.o.duplicateOf?.[seed] ?? seed, req.params?.steps ?? 20, req.params?.width ?? 64, this.o.format ?? "png");
      this.rendered.push(seed);
      emit({ type: "candidate", backend: this.id, key: keys[i]!, seed });
      yield {
        ok: true,
        key: keys[i]!,
        seed,
        image,
        format: this.o.format ?? "png",
        backend: this.id,
        timings: { queuedMs: 0, renderMs: 1, totalMs: 1 },
      };
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new PickrankError("ABORTED", "generation aborted", { cause: signal.reason }));
      },
      { once: true },
    );
  });
}

function mulberry32(a: number): () => number {
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 64×64 image of coloured blocks chosen by the seed; fewer steps add a little noise (a "draft"). */
export async function renderSeed(seed: number, steps: number, width: number, format: "png" | "jpeg"): Promise<Buffer> {
  const size = 64;
  const rnd = mulberry32(seed * 7919 + 13);
  const noise = mulberry32(seed * 31 + steps * 1009 + width);
  const px = Buffer.alloc(size * size * 3);
  const blocks = Array.from({ length: 16 }, () => [rnd() * 255, rnd() * 255, rnd() * 255] as const);
  const amp = steps >= 20 ? 0 : 60;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const b = blocks[Math.floor(y / 16) * 4 + Math.floor(x / 16)]!;
      for (let c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(b[c]! + (noise() - 0.5) * amp)));
    }
  }
  const img = sharp(px, { raw: { width: size, height: size, channels: 3 } });
  return format === "png" ? img.png().toBuffer() : img.jpeg({ quality: 95 }).toBuffer();
}

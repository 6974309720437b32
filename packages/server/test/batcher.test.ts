/**
 * The batcher merges images that arrive while a vision run is in flight. That needs the event loop to
 * turn during a run: the Scorer's sessions run on their own threads. (With onnxruntime-node on the main
 * thread, a run blocked the loop, each later request found the device idle, and batches never merged.)
 * No timing assumption: the later requests are submitted on later turns of the event loop, which happen
 * during the run only when the run does not hold this thread.
 */
import type { Scorer } from "@pickrank/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Batcher } from "../src/batcher.ts";
import { tinyScorer } from "./helpers.ts";

let scorer: Scorer;
let px: Float32Array;

beforeAll(async () => {
  scorer = await tinyScorer({ batchSize: 64 });
  const data = Uint8Array.from({ length: 96 * 64 * 3 }, (_, k) => (k * 7) % 256);
  px = await scorer.preprocess({ data, width: 96, height: 64, channels: 3 });
});

afterAll(async () => {
  await scorer?.dispose();
});

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("Batcher over the real Scorer", () => {
  it("images submitted while a run is on the device go into the next run together", async () => {
    const sizes: number[] = [];
    const batcher = new Batcher((p) => scorer.embedPixels(p), { maxBatch: 64, maxWaitMs: 0, onRun: (r) => sizes.push(r.size) });
    const first = batcher.submit(Array.from({ length: 48 }, () => px));
    await nextTurn();
    const second = batcher.submit(Array.from({ length: 8 }, () => px));
    await nextTurn();
    const third = batcher.submit(Array.from({ length: 8 }, () => px));
    const [a, b, c] = await Promise.all([first, second, third]);
    expect(sizes).toEqual([48, 16]);
    expect(b.runs).toEqual(c.runs);
    // Which run carried an image does not change its embedding (CPU).
    expect(b.embeds[0]).toEqual(a.embeds[0]);
  });
});

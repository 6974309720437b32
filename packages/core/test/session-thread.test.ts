/**
 * Sessions on worker threads (runtime/session-thread.ts): the same numbers as a session on the main
 * thread, the same error codes, abort and release, and an event loop that keeps turning while a graph
 * runs (the reason they exist: `pickrank serve` must read requests and batch them during a run).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PickrankError } from "@pickrank/contract";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSession, type GraphSession, type TensorData } from "../src/runtime/ort.ts";
import { SessionThread } from "../src/runtime/session-thread.ts";
import { Scorer } from "../src/scorer.ts";
import { tinyModel } from "../../../test/helpers/tiny-model.ts";
import { loadPixels, loadReference, type Reference } from "./convert-helpers.ts";

let model: string;
let ref: Reference;
let pixels: Float32Array;

beforeAll(async () => {
  model = await tinyModel();
  ref = await loadReference();
  pixels = await loadPixels(ref);
});

const feeds = (px: Float32Array, n: number): Record<string, TensorData> => ({
  pixel_values: { type: "float32", data: px, dims: [n, 3, 224, 224] },
});

/** `count` copies of the reference images, one batch. */
function repeatPixels(count: number): { data: Float32Array; n: number } {
  const data = new Float32Array(pixels.length * count);
  for (let i = 0; i < count; i++) data.set(pixels, i * pixels.length);
  return { data, n: ref.images.length * count };
}

describe("sessions on a worker thread", () => {
  let worker: GraphSession;
  let main: GraphSession;
  beforeAll(async () => {
    [worker, main] = await Promise.all([
      openSession(path.join(model, "vision.onnx"), "cpu"),
      openSession(path.join(model, "vision.onnx"), "cpu", { thread: "main" }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([worker?.release(), main?.release()]);
  });

  it("give the main thread's outputs bit for bit, and leave the caller's input usable", async () => {
    const input = pixels.slice();
    const a = await worker.run(feeds(input, ref.images.length));
    const b = await main.run(feeds(pixels, ref.images.length));
    expect(worker.inputNames).toEqual(["pixel_values"]);
    expect(worker.outputNames).toEqual(["image_embeds"]);
    expect(a.image_embeds!.dims).toEqual(b.image_embeds!.dims);
    expect(a.image_embeds!.data).toEqual(b.image_embeds!.data);
    expect(input).toEqual(pixels);
  });

  it("keep the event loop turning while a graph runs", async () => {
    const { data, n } = repeatPixels(16);
    let turns = 0;
    let finished = false;
    const run = worker.run(feeds(data, n)).finally(() => {
      finished = true;
    });
    // On the main thread, onnxruntime-node would run the graph before this callback; here it runs beside it.
    await new Promise<void>((resolve) => setImmediate(resolve));
    turns += finished ? 0 : 1;
    await run;
    expect(turns).toBe(1);
  });

  it("fail a bad feed with INFERENCE_FAILED naming the graph, and keep working after it", async () => {
    const bad = worker.run({ pixel_values: { type: "float32", data: new Float32Array(10), dims: [1, 10] } });
    await expect(bad).rejects.toBeInstanceOf(PickrankError);
    await expect(bad).rejects.toMatchObject({ code: "INFERENCE_FAILED", message: expect.stringContaining("vision.onnx") });
    const ok = await worker.run(feeds(pixels, ref.images.length));
    expect(ok.image_embeds!.dims).toEqual([ref.images.length, 16]);
  });

  it("reject with ABORTED when the signal fires before or during a run; the session goes on", async () => {
    const before = new AbortController();
    before.abort();
    await expect(worker.run(feeds(pixels, ref.images.length), { signal: before.signal })).rejects.toMatchObject({ code: "ABORTED" });
    const during = new AbortController();
    const { data, n } = repeatPixels(16);
    const run = worker.run(feeds(data, n), { signal: during.signal });
    during.abort();
    await expect(run).rejects.toMatchObject({ code: "ABORTED" });
    const again = await worker.run(feeds(pixels, ref.images.length));
    const direct = await main.run(feeds(pixels, ref.images.length));
    expect(again.image_embeds!.data).toEqual(direct.image_embeds!.data);
  });
});

describe("opening and releasing worker-thread sessions", () => {
  it("a file that is not an ONNX graph is BAD_MODEL naming it, from the worker thread", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "pickrank-thread-"));
    try {
      const f = path.join(dir, "broken.onnx");
      await writeFile(f, "this is not protobuf");
      const err = await openSession(f, "cpu").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PickrankError);
      expect(err).toMatchObject({ code: "BAD_MODEL", message: expect.stringContaining("broken.onnx") });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("one thread can hold two sessions (as GPU sessions share one): both run, in order, and release", async () => {
    const host = new SessionThread();
    const [text, vision] = [
      await openSession(path.join(model, "text.onnx"), "cpu", { host }),
      await openSession(path.join(model, "vision.onnx"), "cpu", { host }),
    ];
    const ids = BigInt64Array.from(ref.input_ids[0]!.map(BigInt));
    const [t, v] = await Promise.all([
      text.run({ input_ids: { type: "int64", data: ids, dims: [1, 77] } }),
      vision.run(feeds(pixels, ref.images.length)),
    ]);
    expect(t.text_embeds!.dims).toEqual([1, 16]);
    expect(v.image_embeds!.dims).toEqual([ref.images.length, 16]);
    await text.release();
    expect(host.closed).toBe(false);
    await vision.release();
    expect(host.closed).toBe(true);
  });

  it("release() lets runs already asked for finish, then refuses new ones; it can be called twice", async () => {
    const s = await openSession(path.join(model, "vision.onnx"), "cpu");
    const run = s.run(feeds(pixels, ref.images.length));
    const released = s.release();
    expect((await run).image_embeds!.dims).toEqual([ref.images.length, 16]);
    await released;
    await s.release();
    await expect(s.run(feeds(pixels, ref.images.length))).rejects.toMatchObject({
      code: "INTERNAL",
      message: expect.stringContaining("released"),
    });
  });

  it("Scorer: an abort during scoring is ABORTED, dispose() afterwards is clean and refuses work with CLOSED", async () => {
    const scorer = await Scorer.create({ model, device: "cpu", preprocessWorkers: 0 });
    const ctl = new AbortController();
    const raw = { data: Uint8Array.from({ length: 64 * 48 * 3 }, (_, k) => k % 251), width: 64, height: 48, channels: 3 as const };
    const px = await scorer.preprocess(raw);
    const pending = scorer.embedPixels(
      Array.from({ length: 64 }, () => px),
      { signal: ctl.signal },
    );
    ctl.abort();
    await expect(pending).rejects.toMatchObject({ code: "ABORTED" });
    await scorer.dispose();
    expect(() => scorer.embedText("a cat")).toThrow(expect.objectContaining({ code: "CLOSED" }));
  });
});

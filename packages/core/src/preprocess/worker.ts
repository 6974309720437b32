// Worker thread of PreprocessPool: preprocesses the images the pool posts and posts back the tensors.
// Built packages start dist/preprocess/worker.js; from the TypeScript sources, worker-dev.js starts
// this file through tsx (see workerEntry in worker-pool.ts).
import { parentPort } from "node:worker_threads";
import { preprocessImage } from "./image.ts";

const port = parentPort!;

type Job = { id: number; input: Parameters<typeof preprocessImage>[0]; settings: Parameters<typeof preprocessImage>[1] };

port.on("message", async (msg: Job) => {
  try {
    const px = await preprocessImage(msg.input, msg.settings);
    port.postMessage({ id: msg.id, px }, [px.buffer as ArrayBuffer]);
  } catch (e) {
    const err = e as { code?: unknown; details?: unknown } | undefined;
    port.postMessage({
      id: msg.id,
      error: { code: err?.code ?? "BAD_IMAGE", message: e instanceof Error ? e.message : String(e), details: err?.details },
    });
  }
});
port.postMessage({ ready: true });

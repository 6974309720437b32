// Worker thread of PreprocessPool. Plain JavaScript so it starts under any loader (tsx, vitest, node):
// it registers tsx itself, then loads the TypeScript preprocessing.
import { parentPort } from "node:worker_threads";
import { register } from "tsx/esm/api";

register();
const { preprocessImage } = await import("./image.ts");

parentPort.on("message", async (msg) => {
  try {
    const px = await preprocessImage(msg.input, msg.settings);
    parentPort.postMessage({ id: msg.id, px }, [px.buffer]);
  } catch (e) {
    parentPort.postMessage({
      id: msg.id,
      error: { code: e?.code ?? "BAD_IMAGE", message: e instanceof Error ? e.message : String(e), details: e?.details },
    });
  }
});
parentPort.postMessage({ ready: true });

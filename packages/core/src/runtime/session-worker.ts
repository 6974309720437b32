// Worker thread of one ONNX Runtime session (see session-thread.ts): opens the graph named in
// workerData, answers "ready" or the load's error, then runs graphs and releases the session as the
// main thread asks, one message at a time and in order. Built packages start dist/runtime/session-worker.js;
// from the TypeScript sources, session-worker-dev.js starts this file through tsx.
import { parentPort, workerData } from "node:worker_threads";
import { toPickrankError } from "@pickrank/contract";
import { openLocalSession, type GraphSession } from "./ort.ts";
import type { SerializedError, SessionReply, SessionRequest, SessionWorkerData } from "./session-thread.ts";

const port = parentPort!;
const { file, device, options } = workerData as SessionWorkerData;

function serialize(e: unknown, code: "BAD_MODEL" | "INFERENCE_FAILED"): SerializedError {
  const err = toPickrankError(e, code);
  return { code: err.code, message: err.message, details: err.details };
}

const post = (msg: SessionReply): void => port.postMessage(msg);

let session: GraphSession | undefined;
try {
  session = await openLocalSession(file, device, options);
  post({ kind: "ready", inputNames: [...session.inputNames], outputNames: [...session.outputNames] });
} catch (e) {
  // The main thread terminates this thread once it has the error.
  post({ kind: "failed", error: serialize(e, "BAD_MODEL") });
}

// One message at a time, in order: onnxruntime-node's run() returns before its graph runs (it runs on
// a later turn of this thread's loop), so a release must wait for the runs posted before it.
let queue: Promise<void> = Promise.resolve();
port.on("message", (msg: SessionRequest) => {
  queue = queue.then(() => handle(msg));
});

async function handle(msg: SessionRequest): Promise<void> {
  if (!session) return;
  if (msg.kind === "release") {
    await session.release().catch(() => undefined);
    post({ kind: "released", id: msg.id });
    return;
  }
  try {
    const outputs = await session.run(msg.feeds);
    post({ kind: "result", id: msg.id, outputs });
  } catch (e) {
    post({ kind: "failed", id: msg.id, error: serialize(e, "INFERENCE_FAILED") });
  }
}

// A worker thread holding ONNX Runtime sessions (see session-thread.ts): opens graphs, runs them and
// releases them as the main thread asks, one message at a time and in order. Built packages start
// dist/runtime/session-worker.js; from the TypeScript sources, session-worker-dev.js starts this file
// through tsx.
import { parentPort } from "node:worker_threads";
import { PickrankError, toPickrankError } from "@pickrank/contract";
import { openLocalSession, type GraphSession } from "./ort.ts";
import type { SerializedError, SessionReply, SessionRequest } from "./session-thread.ts";

const port = parentPort!;
const sessions = new Map<number, GraphSession>();

function serialize(e: unknown, code: "BAD_MODEL" | "INFERENCE_FAILED"): SerializedError {
  const err = toPickrankError(e, code);
  return { code: err.code, message: err.message, details: err.details };
}

const post = (msg: SessionReply): void => port.postMessage(msg);

async function handle(msg: SessionRequest): Promise<void> {
  if (msg.kind === "open") {
    try {
      const s = await openLocalSession(msg.file, msg.device, msg.options);
      sessions.set(msg.id, s);
      post({ kind: "opened", id: msg.id, inputNames: [...s.inputNames], outputNames: [...s.outputNames] });
    } catch (e) {
      post({ kind: "failed", id: msg.id, error: serialize(e, "BAD_MODEL") });
    }
    return;
  }
  const session = sessions.get(msg.sid);
  if (msg.kind === "release") {
    sessions.delete(msg.sid);
    await session?.release().catch(() => undefined);
    post({ kind: "released", id: msg.id });
    return;
  }
  try {
    if (!session) throw new PickrankError("INTERNAL", `No session ${msg.sid} on this ONNX Runtime thread`);
    post({ kind: "result", id: msg.id, outputs: await session.run(msg.feeds) });
  } catch (e) {
    post({ kind: "failed", id: msg.id, error: serialize(e, "INFERENCE_FAILED") });
  }
}

// One message at a time, in order: onnxruntime-node's run() returns before its graph runs (it runs on
// a later turn of this thread's loop), so a release must wait for the runs posted before it.
let queue: Promise<void> = Promise.resolve();
port.on("message", (msg: SessionRequest) => {
  queue = queue.then(() => handle(msg));
});

/** The ComfyUI adapter's pieces without a server: messages, transport, prompt tracker, settings. */
import { EventEmitter } from "node:events";
import { describe, expect, it, vi } from "vitest";
import { BINARY_EVENT, parseBinaryFrame, parseTextFrame, type ComfyMessage } from "../src/comfyui/messages.ts";
import { ComfyTransport, type SocketLike } from "../src/comfyui/transport.ts";
import { PromptTracker } from "../src/comfyui/prompt-tracker.ts";
import { settingsFromWorkflow } from "../src/comfyui/settings.ts";
import { applyWorkflow, detectWorkflow, DEFAULT_TXT2IMG_WORKFLOW } from "@pickrank/adapters";
import { PickrankError } from "@pickrank/contract";
import { FLUX } from "./workflows.ts";

/** vi.waitFor's bound: its 1 s default is short on a loaded 2-core machine (an upper bound, not a measurement). */
const WAIT = { timeout: 15_000 };

const msg = (type: string, data: unknown): string => JSON.stringify({ type, data });

function message(type: string, data: unknown): ComfyMessage {
  const r = parseTextFrame(msg(type, data));
  if (r.kind !== "message") throw new Error(`not a message: ${JSON.stringify(r)}`);
  return r.message;
}

describe("messages: parseTextFrame", () => {
  it("types every message pickrank reads, node ids as strings", () => {
    expect(parseTextFrame(msg("executing", { node: 9, prompt_id: "p" }))).toEqual({
      kind: "message",
      message: { type: "executing", data: { node: "9", prompt_id: "p" } },
    });
    expect(parseTextFrame(msg("executing", { node: null, prompt_id: "p" }))).toMatchObject({
      kind: "message",
      message: { data: { node: null } },
    });
    expect(parseTextFrame(msg("progress", { value: 3, max: 20, prompt_id: "p", node: "3" }))).toMatchObject({
      kind: "message",
      message: { type: "progress", data: { value: 3, max: 20 } },
    });
    expect(parseTextFrame(msg("execution_cached", { prompt_id: "p" }))).toMatchObject({ message: { data: { nodes: [] } } });
    for (const t of ["execution_start", "execution_success", "execution_interrupted", "execution_error"]) {
      expect(parseTextFrame(msg(t, { prompt_id: "p" })).kind).toBe("message");
    }
    expect(parseTextFrame(msg("status", { status: { exec_info: { queue_remaining: 2 } }, sid: "abc" })).kind).toBe("message");
  });

  it("ignores types it does not read and flags frames that break the protocol", () => {
    expect(parseTextFrame(msg("crystools.monitor", { cpu: 3 }))).toEqual({ kind: "ignored", type: "crystools.monitor" });
    expect(parseTextFrame("<<not json>>")).toEqual({ kind: "invalid", reason: "not JSON" });
    expect(parseTextFrame("[1,2]")).toEqual({ kind: "invalid", reason: "not { type, data }" });
    expect(parseTextFrame(msg("progress", { value: "3", max: 20 }))).toMatchObject({
      kind: "invalid",
      reason: expect.stringMatching(/^progress: value/),
    });
    expect(parseTextFrame(msg("execution_start", {}))).toMatchObject({ kind: "invalid" });
  });
});

describe("messages: parseBinaryFrame", () => {
  const head = (event: number, second: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(event, 0);
    b.writeUInt32BE(second, 4);
    return b;
  };
  it("reads PREVIEW_IMAGE (format 1 JPEG, 2 PNG) and PREVIEW_IMAGE_WITH_METADATA (prompt and node)", () => {
    expect(parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.PREVIEW_IMAGE, 2), Buffer.from("png!")]))).toEqual({
      image: Buffer.from("png!"),
      format: "png",
    });
    expect(parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.PREVIEW_IMAGE, 1), Buffer.from("jpg")]))?.format).toBe("jpeg");
    const meta = Buffer.from(JSON.stringify({ prompt_id: "p1", node_id: 19, image_type: "image/webp" }));
    expect(
      parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA, meta.length), meta, Buffer.from("img")])),
    ).toEqual({
      image: Buffer.from("img"),
      format: "webp",
      promptId: "p1",
      nodeId: "19",
    });
  });
  it("drops short frames, other events and broken metadata", () => {
    expect(parseBinaryFrame(Buffer.alloc(5))).toBeUndefined();
    expect(parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.TEXT, 0), Buffer.from("x")]))).toBeUndefined();
    expect(parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA, 99), Buffer.from("{}")]))).toBeUndefined();
    expect(parseBinaryFrame(Buffer.concat([head(BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA, 3), Buffer.from("{{{x")]))).toBeUndefined();
  });
});

class FakeSocket extends EventEmitter implements SocketLike {
  closed = false;
  close(): void {
    this.closed = true;
  }
  terminate(): void {
    this.closed = true;
  }
}

function transportWith(opens: (() => Promise<FakeSocket>)[]) {
  const seen: { messages: string[]; images: number; reconnected: number; lost: number } = {
    messages: [],
    images: 0,
    reconnected: 0,
    lost: 0,
  };
  let i = 0;
  const t = new ComfyTransport(
    () => {
      const next = opens[i++];
      return next ? next() : Promise.reject(new PickrankError("BACKEND_UNREACHABLE", "no more sockets"));
    },
    "client-1",
    { connectTimeoutMs: 100, reconnectAttempts: 2, reconnectDelayMs: 1 },
    {
      message: (m) => seen.messages.push(m.type),
      image: () => seen.images++,
      reconnected: () => seen.reconnected++,
      lost: () => seen.lost++,
    },
  );
  return { t, seen };
}

describe("ComfyTransport", () => {
  it("delivers typed messages and image frames, counts broken frames, and reconnects after a drop", async () => {
    const first = new FakeSocket();
    const second = new FakeSocket();
    const { t, seen } = transportWith([async () => first, async () => second]);
    expect(await t.connect()).toBe(true);
    first.emit("message", Buffer.from(msg("execution_start", { prompt_id: "p" })), false);
    first.emit("message", Buffer.from("garbage"), false);
    const frame = Buffer.alloc(12);
    frame.writeUInt32BE(1, 0);
    frame.writeUInt32BE(2, 4);
    first.emit("message", frame, true);
    expect(seen).toMatchObject({ messages: ["execution_start"], images: 1 });
    expect(t.invalidFrames).toBe(1);
    first.emit("close");
    expect(t.state).toBe("reconnecting");
    await vi.waitFor(() => expect(t.state).toBe("open"), WAIT);
    expect(seen.reconnected).toBe(1);
    first.emit("message", Buffer.from(msg("execution_start", { prompt_id: "old" })), false); // the old socket is ignored
    second.emit("message", Buffer.from(msg("executing", { node: null, prompt_id: "p" })), false);
    expect(seen.messages).toEqual(["execution_start", "executing"]);
    t.close();
    expect(second.closed).toBe(true);
    expect(t.state).toBe("closed");
  });

  it("gives up after reconnectAttempts; a refused upgrade leaves it lost, a server that is down throws", async () => {
    const only = new FakeSocket();
    const { t, seen } = transportWith([async () => only]);
    await t.connect();
    only.emit("close");
    // Waits for the state, not a time: after a 50 ms wait a loaded machine could still be between the two attempts.
    await vi.waitFor(() => expect(t.state).toBe("lost"), WAIT);
    expect(seen.lost).toBe(1);

    const refused = transportWith([() => Promise.reject(new PickrankError("BACKEND_REJECTED", "HTTP 404"))]);
    expect(await refused.t.connect()).toBe(false);
    expect(refused.t.state).toBe("lost");
    const down = transportWith([() => Promise.reject(new PickrankError("BACKEND_UNREACHABLE", "ECONNREFUSED"))]);
    await expect(down.t.connect()).rejects.toMatchObject({ code: "BACKEND_UNREACHABLE" });
    const auth = transportWith([() => Promise.reject(new PickrankError("BACKEND_AUTH", "401"))]);
    await expect(auth.t.connect()).rejects.toMatchObject({ code: "BACKEND_AUTH" });
  });
});

describe("PromptTracker", () => {
  const ours = (id: string): boolean => id.startsWith("ours");

  it("queued → running → finishing from socket messages, with progress and timings", () => {
    const t = new PromptTracker("ours-1", "comfyui@x", 1000);
    expect(t.onMessage(message("execution_start", { prompt_id: "ours-1" }), 1500)).toEqual({ kind: "none" });
    expect(t).toMatchObject({ phase: "running", startedAt: 1500, lastProgressAt: 1500 });
    expect(t.onMessage(message("progress", { prompt_id: "ours-1", value: 2, max: 4 }), 1600)).toEqual({
      kind: "progress",
      step: 2,
      steps: 4,
    });
    expect(t.stalledFor(1700, true)).toBe(100);
    expect(t.onMessage(message("executing", { prompt_id: "ours-1", node: null }), 1800)).toEqual({ kind: "collect" });
    expect(t.phase).toBe("finishing");
    expect(t.onMessage(message("executing", { prompt_id: "ours-1", node: null }), 1900)).toEqual({ kind: "none" });
    t.finish();
    expect(t.settled).toBe(true);
  });

  it("fails on execution_error and execution_interrupted with the node and the exception", () => {
    const t = new PromptTracker("ours-1", "comfyui@x", 0);
    const a = t.onMessage(
      message("execution_error", {
        prompt_id: "ours-1",
        node_id: "3",
        node_type: "KSampler",
        exception_type: "torch.OutOfMemoryError",
        exception_message: "CUDA out of memory",
      }),
      5,
    );
    expect(a).toMatchObject({
      kind: "failed",
      error: {
        code: "BACKEND_REJECTED",
        message: "comfyui@x failed prompt ours-1 at KSampler #3: torch.OutOfMemoryError: CUDA out of memory",
      },
    });
    const u = new PromptTracker("ours-2", "comfyui@x", 0);
    expect(u.onMessage(message("execution_interrupted", { prompt_id: "ours-2", node_id: "3", node_type: "KSampler" }), 5)).toMatchObject({
      kind: "failed",
      error: { code: "ABORTED" },
    });
  });

  it("waiting behind other clients' running work never counts as a stall; waiting in a queue where nothing runs does", () => {
    const t = new PromptTracker("ours-1", "comfyui@x", 1000);
    t.onQueue({ running: ["theirs-1"], pending: ["theirs-2", "ours-1"], askedAt: 1000 }, ours, 1000);
    expect(t.foreignAhead).toBe(2);
    expect(t.stalledFor(900_000, true)).toBe(0);
    t.onQueue({ running: [], pending: ["ours-1"], askedAt: 2000 }, ours, 2000);
    expect(t.stalledFor(5000, true)).toBe(3000);
    t.onQueue({ running: ["ours-1"], pending: [], askedAt: 6000 }, ours, 6000);
    expect(t).toMatchObject({ phase: "running", startedAt: 6000 });
    // A running prompt's progress is visible only with a socket.
    expect(t.stalledFor(9000, true)).toBe(3000);
    expect(t.stalledFor(9000, false)).toBe(0);
  });

  it("an answer asked before the prompt existed says nothing; gone from /queue: /history decides", () => {
    const t = new PromptTracker("ours-1", "comfyui@x", 1000);
    expect(t.onQueue({ running: [], pending: [], askedAt: 999 }, ours, 1001)).toEqual({ kind: "none" });
    expect(t.onQueue({ running: [], pending: [], askedAt: 1000 }, ours, 1001)).toEqual({ kind: "check-history" });
    const entry = {
      outputs: { "9": { images: [{ filename: "a.png", subfolder: "", type: "output" }] } },
      status: { status_str: "success", completed: true },
    };
    expect(t.onHistory(entry)).toEqual({ kind: "collect", entry });
    const bad = new PromptTracker("ours-2", "comfyui@x", 0);
    expect(bad.onHistory({ outputs: {}, status: { status_str: "error", messages: [["execution_interrupted", {}]] } })).toMatchObject({
      kind: "failed",
      error: { code: "ABORTED" },
    });
    const gone = new PromptTracker("ours-3", "comfyui@x", 0);
    expect(gone.onMissing()).toEqual({ kind: "none" });
    expect(gone.onMissing()).toMatchObject({
      kind: "failed",
      error: { code: "BACKEND_REJECTED", message: expect.stringContaining("neither in the queue nor in the history") },
    });
  });
});

describe("settingsFromWorkflow", () => {
  it("reads the settings where the plan says they live, leaving out what has no node", () => {
    const plan = detectWorkflow(DEFAULT_TXT2IMG_WORKFLOW);
    const wf = applyWorkflow(DEFAULT_TXT2IMG_WORKFLOW, plan, {
      prompt: "p",
      negativePrompt: "n",
      seed: 3,
      params: { steps: 9, checkpoint: "m.safetensors" },
    });
    expect(settingsFromWorkflow(wf, plan)).toEqual({
      checkpoint: "m.safetensors",
      steps: 9,
      cfgScale: 7,
      sampler: "euler",
      scheduler: "normal",
      width: 512,
      height: 512,
      negativePrompt: "n",
    });
    // Flux: no negative conditioning, settings on helper nodes.
    const fplan = detectWorkflow(FLUX);
    const s = settingsFromWorkflow(applyWorkflow(FLUX, fplan, { prompt: "p", seed: 1 }), fplan);
    // BasicGuider has no CFG and no negative text: both are left out, not guessed.
    expect(s).toEqual({ checkpoint: "flux1-dev.safetensors", steps: 3, sampler: "euler", scheduler: "simple", width: 1024, height: 1024 });
  });
});

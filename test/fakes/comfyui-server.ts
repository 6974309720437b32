/**
 * A fake ComfyUI that speaks the real protocol the way ComfyUI's server.py / execution.py / main.py do:
 * POST /prompt validation (400 {error:{type,message,details,extra_info}, node_errors}), one prompt at a
 * time in queue order, WebSocket events only to the socket whose clientId matches the prompt's client_id
 * (status to everyone), the message order execution_start → execution_cached → executing(node)… →
 * progress / executed → execution_success → history written → executing(node null), binary preview
 * frames (4-byte big-endian event type, 4-byte image format, bytes) and SaveImageWebsocket frames,
 * /history, /view, /queue, /interrupt, /object_info, /system_stats, every route also under /api.
 * Images are small PNGs drawn from the seed, the prompt and the batch index, so they differ per seed
 * deterministically (and carry those in a tEXt chunk tests can read back).
 * Faults: hanging routes, garbage answers, dropped sockets, a server that dies, failing seeds.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { randomUUID } from "node:crypto";
import { deflateSync } from "node:zlib";
import { WebSocketServer, type WebSocket } from "ws";
import { coreObjectInfo } from "./comfyui-object-info.ts";

// ---- deterministic PNGs -------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FakeImageInfo {
  seed: number;
  prompt: string;
  batchIndex: number;
  negative?: string;
}

/**
 * An RGB PNG whose background colour comes from the prompt and whose discs and stripes come from the
 * seed and batch index; the same inputs always give the same bytes. The inputs ride in a tEXt chunk.
 */
export function fakePng(info: FakeImageInfo & { width: number; height: number }): Buffer {
  const { width: w, height: h } = info;
  const ph = hashString(info.prompt);
  const rnd = mulberry32((ph ^ Math.imul(info.seed >>> 0, 2654435761) ^ Math.imul(info.batchIndex + 1, 40503)) >>> 0);
  const bg = [ph & 0xff, (ph >>> 8) & 0xff, (ph >>> 16) & 0xff];
  const discs = Array.from({ length: 3 }, () => ({
    x: rnd() * w,
    y: rnd() * h,
    r: (0.1 + rnd() * 0.3) * Math.min(w, h),
    c: [rnd() * 255, rnd() * 255, rnd() * 255],
  }));
  const stripe = 4 + Math.floor(rnd() * 12);
  const raw = Buffer.alloc((w * 3 + 1) * h);
  for (let y = 0; y < h; y++) {
    const row = y * (w * 3 + 1);
    raw[row] = 0;
    for (let x = 0; x < w; x++) {
      let c = bg;
      for (const d of discs) if ((x - d.x) ** 2 + (y - d.y) ** 2 < d.r * d.r) c = d.c;
      const shade = Math.floor((x + y) / stripe) % 2 === 0 ? 1 : 0.85;
      const o = row + 1 + x * 3;
      raw[o] = c[0]! * shade;
      raw[o + 1] = c[1]! * shade;
      raw[o + 2] = c[2]! * shade;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const meta: FakeImageInfo = { seed: info.seed, prompt: info.prompt, batchIndex: info.batchIndex };
  if (info.negative !== undefined) meta.negative = info.negative;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("tEXt", Buffer.concat([Buffer.from("pickrank-fake\0", "latin1"), Buffer.from(JSON.stringify(meta), "utf8")])),
    chunk("IDAT", deflateSync(raw, { level: 1 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** Reads back what a fake image was drawn from (undefined for any other image). */
export function readFakeImageInfo(png: Uint8Array): FakeImageInfo | undefined {
  const b = Buffer.from(png);
  let o = 8;
  while (o + 8 <= b.length) {
    const len = b.readUInt32BE(o);
    const type = b.toString("latin1", o + 4, o + 8);
    if (type === "tEXt") {
      const data = b.subarray(o + 8, o + 8 + len);
      const z = data.indexOf(0);
      if (data.toString("latin1", 0, z) === "pickrank-fake") return JSON.parse(data.subarray(z + 1).toString("utf8")) as FakeImageInfo;
    }
    o += 12 + len;
  }
  return undefined;
}

// ---- the server ---------------------------------------------------------------------------------

export type ComfyRoute = "prompt" | "history" | "view" | "ws" | "queue" | "system_stats" | "object_info" | "interrupt";

export interface FakeComfyUIOptions {
  /** Checkpoint names offered by CheckpointLoaderSimple (default ["sd15.safetensors", "sdxl_base_1.0.safetensors"]). */
  checkpoints?: string[];
  /** Delay of one sampling step in ms (default 1). */
  stepDelayMs?: number;
  /** Images are scaled down to at most this side to keep tests fast (default 64). */
  maxImageSide?: number;
  /** Require HTTP Basic credentials (a proxy in front of ComfyUI) or an exact Authorization header. */
  auth?: { username: string; password: string } | { header: string };
  /** Serve routes only under /api (a proxy that forwards /api only). */
  apiOnly?: boolean;
  /** Send binary preview frames while sampling (default true), as ComfyUI does with previews on. */
  previews?: boolean;
  /** Newer servers' object_info combo format ["COMBO", {options}] instead of [[names], {}]. */
  comboV2?: boolean;
  /**
   * Custom node classes the server has, as /object_info describes them (see comfyui-object-info.ts
   * customClass): served by /object_info, accepted in prompts, run as pass-through nodes, and those with
   * output_node true save images like SaveImage.
   */
  nodeClasses?: Record<string, Record<string, unknown>>;
  faults?: {
    /** Routes that never answer ("execute": prompts are accepted but never run). */
    hang?: (ComfyRoute | "execute")[];
    /** Routes that answer 200 with something unreadable. */
    garbage?: ComfyRoute[];
    /** After this many WebSocket messages in total, the server drops every socket (once). */
    dropSocketsAfterMessages?: number;
    /** Refuse every WebSocket reconnect after a drop (clients must fall back to /history). */
    refuseReconnect?: boolean;
    /** Prompts whose seed is listed fail at the sampler with an execution_error (CUDA OOM). */
    failSeeds?: number[];
    /** The server dies (connections cut, port closed) after this many prompts finished. */
    killAfterPrompts?: number;
    /** Prompts whose seed is listed freeze in the sampler (no step, no message) until interrupted; HTTP keeps answering. */
    freezeSeeds?: number[];
  };
}

interface QueueItem {
  number: number;
  id: string;
  prompt: Record<string, { class_type: string; inputs: Record<string, unknown> }>;
  extra: { client_id?: string };
  outputs: string[];
  /** Another client's job that holds the worker this long (ms) and makes no image (queueForeign). */
  holdMs?: number;
}

export interface FakeComfyUI {
  url: string;
  port: number;
  /** Prompts accepted, in order, with the seed and text the fake found in them. */
  prompts: { id: string; clientId: string | undefined; prompt: QueueItem["prompt"] }[];
  /** Prompt ids in the order they finished (success or error). */
  finished: string[];
  interrupts: { promptId: string | undefined; running: string | undefined }[];
  deleted: string[];
  requests: { method: string; path: string; authorization: string | undefined }[];
  /** Most prompts queued or running at once. */
  maxInFlight: number;
  /** WebSocket connections opened so far (reconnects included). */
  connections: number;
  dropSockets(): void;
  /** Sends a JSON message to every socket (for tests of other clients' traffic). */
  broadcast(type: string, data: unknown): void;
  /**
   * Queues a prompt of another client (client_id "other-client" unless given) that holds the worker
   * for `holdMs` and saves nothing, as a long job of someone else would; returns its prompt id.
   */
  queueForeign(o: { holdMs: number; clientId?: string }): string;
  /** Abrupt death: connections cut, port closed, nothing more runs. */
  kill(): Promise<void>;
  close(): Promise<void>;
}

const OUTPUT_CLASSES = new Set(["SaveImage", "PreviewImage", "SaveImageWebsocket"]);
const KNOWN = new Set([
  "CheckpointLoaderSimple",
  "UNETLoader",
  "DualCLIPLoader",
  "CLIPLoader",
  "VAELoader",
  "LoraLoader",
  "CLIPSetLastLayer",
  "CLIPTextEncode",
  "CLIPTextEncodeSDXL",
  "CLIPTextEncodeSDXLRefiner",
  "CLIPTextEncodeFlux",
  "CLIPTextEncodeSD3",
  "ConditioningZeroOut",
  "ConditioningCombine",
  "FluxGuidance",
  "ModelSamplingFlux",
  "EmptyLatentImage",
  "EmptySD3LatentImage",
  "LatentUpscale",
  "LatentUpscaleBy",
  "KSampler",
  "KSamplerAdvanced",
  "SamplerCustom",
  "SamplerCustomAdvanced",
  "RandomNoise",
  "DisableNoise",
  "BasicGuider",
  "CFGGuider",
  "KSamplerSelect",
  "BasicScheduler",
  "VAEDecode",
  "SaveImage",
  "PreviewImage",
  "SaveImageWebsocket",
  "PrimitiveString",
  "PrimitiveInt",
]);
const SAMPLER_NAMES = ["euler", "euler_ancestral", "heun", "dpmpp_2m", "dpmpp_2m_sde", "ddim", "uni_pc"];

function isLink(v: unknown): v is [string, number] {
  return Array.isArray(v) && v.length === 2 && typeof v[1] === "number";
}

export async function startFakeComfyUI(opts: FakeComfyUIOptions = {}): Promise<FakeComfyUI> {
  const checkpoints = opts.checkpoints ?? ["sd15.safetensors", "sdxl_base_1.0.safetensors"];
  const nodeClasses = opts.nodeClasses ?? {};
  const isOutputClass = (ct: string): boolean => OUTPUT_CLASSES.has(ct) || nodeClasses[ct]?.output_node === true;
  const stepDelay = opts.stepDelayMs ?? 1;
  const maxSide = opts.maxImageSide ?? 64;
  const faults = opts.faults ?? {};
  const hang = new Set(faults.hang ?? []);
  const garbage = new Set(faults.garbage ?? []);
  const sockets = new Map<string, WebSocket>();
  const queue: QueueItem[] = [];
  const history = new Map<string, unknown>();
  const files = new Map<string, Buffer>();
  const hanging = new Set<http.ServerResponse>();
  const stalledUpgrades = new Set<import("node:stream").Duplex>();
  let number = 0;
  let fileCounter = 0;
  let running: QueueItem | undefined;
  let interruptFlag = false;
  let clientId: string | undefined; // client of the running prompt (server.client_id)
  let lastNodeId: string | undefined;
  let messagesSent = 0;
  let dropped = false;
  let dead = false;
  let wake: (() => void) | undefined;

  const state: FakeComfyUI = {
    url: "",
    port: 0,
    prompts: [],
    finished: [],
    interrupts: [],
    deleted: [],
    requests: [],
    maxInFlight: 0,
    connections: 0,
    dropSockets: () => {
      for (const ws of sockets.values()) ws.terminate();
      sockets.clear();
    },
    broadcast: (type, data) => send(type, data, undefined),
    queueForeign: (o) => {
      const id = randomUUID();
      const item: QueueItem = {
        number: number++,
        id,
        prompt: {},
        extra: { client_id: o.clientId ?? "other-client" },
        outputs: [],
        holdMs: o.holdMs,
      };
      queue.push(item);
      state.maxInFlight = Math.max(state.maxInFlight, queue.length + (running ? 1 : 0));
      statusUpdate();
      wake?.();
      return id;
    },
    kill: async () => {
      if (dead) return;
      dead = true;
      wake?.();
      state.dropSockets();
      for (const r of hanging) r.destroy();
      for (const sock of stalledUpgrades) sock.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
    close: async () => {
      await state.kill();
      wss.close();
    },
  };

  // ---- messaging: send_sync(event, data, sid): sid None = everyone, else only that socket --------
  function raw(ws: WebSocket, payload: string | Buffer): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(payload, { binary: typeof payload !== "string" });
    messagesSent++;
    if (faults.dropSocketsAfterMessages !== undefined && !dropped && messagesSent >= faults.dropSocketsAfterMessages) {
      dropped = true;
      setImmediate(() => state.dropSockets());
    }
  }
  function targets(sid: string | undefined): WebSocket[] {
    if (sid === undefined) return [...sockets.values()];
    const ws = sockets.get(sid);
    return ws ? [ws] : [];
  }
  function send(type: string, data: unknown, sid: string | undefined): void {
    for (const ws of targets(sid)) {
      if (garbage.has("ws")) raw(ws, "<<not json>>");
      raw(ws, JSON.stringify({ type, data }));
    }
  }
  function sendBinary(event: number, body: Buffer, sid: string | undefined): void {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(event);
    for (const ws of targets(sid)) raw(ws, Buffer.concat([head, body]));
  }
  const queueInfo = (): unknown => ({ exec_info: { queue_remaining: queue.length + (running ? 1 : 0) } });
  const statusUpdate = (): void => send("status", { status: queueInfo() }, undefined);

  // ---- validation, shaped like execution.validate_prompt ----------------------------------------
  function validate(prompt: unknown): { ok: true; outputs: string[] } | { ok: false; error: unknown; nodeErrors: Record<string, unknown> } {
    if (prompt === null || typeof prompt !== "object") {
      return {
        ok: false,
        error: { type: "invalid_prompt", message: "Cannot execute because the prompt is not an object.", details: "", extra_info: {} },
        nodeErrors: {},
      };
    }
    const p = prompt as Record<string, { class_type?: unknown; inputs?: unknown; _meta?: { title?: string } }>;
    for (const [id, n] of Object.entries(p)) {
      if (!n || typeof n.class_type !== "string") {
        return {
          ok: false,
          error: {
            type: "invalid_prompt",
            message: "Cannot execute because a node is missing the class_type property.",
            details: `Node ID '#${id}'`,
            extra_info: {},
          },
          nodeErrors: {},
        };
      }
      if (!KNOWN.has(n.class_type) && !Object.hasOwn(nodeClasses, n.class_type)) {
        return {
          ok: false,
          error: {
            type: "missing_node_type",
            message: `Cannot execute because node ${n.class_type} does not exist.`,
            details: `Node ID '#${id}'`,
            extra_info: { node_id: id, class_type: n.class_type, node_title: n._meta?.title ?? n.class_type },
          },
          nodeErrors: {},
        };
      }
    }
    const outputs = Object.keys(p).filter((id) => isOutputClass(String(p[id]!.class_type)));
    if (outputs.length === 0)
      return {
        ok: false,
        error: { type: "prompt_no_outputs", message: "Prompt has no outputs", details: "", extra_info: {} },
        nodeErrors: {},
      };
    const nodeErrors: Record<string, { errors: unknown[]; dependent_outputs: string[]; class_type: string }> = {};
    const bad = (id: string, err: Record<string, unknown>): void => {
      const ct = String(p[id]!.class_type);
      (nodeErrors[id] ??= { errors: [], dependent_outputs: [], class_type: ct }).errors.push(err);
    };
    for (const [id, n] of Object.entries(p)) {
      const inputs = (n.inputs ?? {}) as Record<string, unknown>;
      for (const [name, v] of Object.entries(inputs)) {
        if (isLink(v) && !(String(v[0]) in p)) {
          bad(id, {
            type: "exception_during_inner_validation",
            message: "Exception when validating inner node",
            details: `'${String(v[0])}'`,
            extra_info: { input_name: name },
          });
        }
      }
      if (n.class_type === "CheckpointLoaderSimple" && !checkpoints.includes(String(inputs.ckpt_name))) {
        bad(id, {
          type: "value_not_in_list",
          message: "Value not in list",
          details: `ckpt_name: '${String(inputs.ckpt_name)}' not in ${JSON.stringify(checkpoints)}`,
          extra_info: { input_name: "ckpt_name", received_value: inputs.ckpt_name },
        });
      }
      if (
        (n.class_type === "KSampler" || n.class_type === "KSamplerAdvanced" || n.class_type === "KSamplerSelect") &&
        "sampler_name" in inputs &&
        !SAMPLER_NAMES.includes(String(inputs.sampler_name))
      ) {
        bad(id, {
          type: "value_not_in_list",
          message: "Value not in list",
          details: `sampler_name: '${String(inputs.sampler_name)}' not in ${JSON.stringify(SAMPLER_NAMES)}`,
          extra_info: { input_name: "sampler_name", received_value: inputs.sampler_name },
        });
      }
      if ("steps" in inputs && !isLink(inputs.steps) && (typeof inputs.steps !== "number" || inputs.steps < 1)) {
        bad(id, {
          type: "value_smaller_than_min",
          message: `Value ${String(inputs.steps)} smaller than min of 1`,
          details: "steps",
          extra_info: { input_name: "steps", received_value: inputs.steps },
        });
      }
      for (const k of ["seed", "noise_seed"]) {
        const v = inputs[k];
        if (k in inputs && !isLink(v) && (typeof v !== "number" || !Number.isInteger(v) || v < 0)) {
          bad(id, {
            type: "invalid_input_type",
            message: "Failed to convert an input value to a INT value",
            details: `${k}, ${String(v)}`,
            extra_info: { input_name: k, received_value: v },
          });
        }
      }
    }
    if (Object.keys(nodeErrors).length === 0) return { ok: true, outputs };
    const ancestorsOf = (id: string, seen = new Set<string>()): Set<string> => {
      for (const v of Object.values((p[id]?.inputs ?? {}) as Record<string, unknown>)) {
        if (isLink(v) && !seen.has(String(v[0]))) {
          seen.add(String(v[0]));
          ancestorsOf(String(v[0]), seen);
        }
      }
      return seen;
    };
    const good: string[] = [];
    for (const out of outputs) {
      const a = ancestorsOf(out);
      a.add(out);
      const failing = Object.keys(nodeErrors).filter((id) => a.has(id));
      failing.forEach((id) => nodeErrors[id]!.dependent_outputs.push(out));
      if (failing.length === 0) good.push(out);
    }
    if (good.length > 0) return { ok: true, outputs: good };
    const details = Object.values(nodeErrors)
      .flatMap((ne) => ne.errors.map((e) => `${(e as { message: string }).message}: ${(e as { details: string }).details}`))
      .join("\n");
    return {
      ok: false,
      error: { type: "prompt_outputs_failed_validation", message: "Prompt outputs failed validation", details, extra_info: {} },
      nodeErrors,
    };
  }

  // ---- execution, in the spirit of PromptExecutor.execute + prompt_worker -----------------------
  interface Latent {
    w: number;
    h: number;
    batch: number;
    seeds: number[];
    texts: string[];
    negatives: string[];
  }
  class Interrupted extends Error {}
  class Failed extends Error {
    constructor(
      readonly nodeId: string,
      readonly nodeType: string,
    ) {
      super("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total capacity)");
    }
  }

  async function execute(item: QueueItem): Promise<void> {
    const sid = item.extra.client_id;
    const messages: [string, unknown][] = [];
    const add = (event: string, data: Record<string, unknown>): void => {
      const d = { ...data, timestamp: Date.now() };
      messages.push([event, d]);
      // add_message: sent to the prompt's client (everyone when it has none and broadcast is set).
      if (sid !== undefined) send(event, d, sid);
    };
    add("execution_start", { prompt_id: item.id });
    add("execution_cached", { nodes: [], prompt_id: item.id });
    const p = item.prompt;
    const order: string[] = [];
    const visit = (id: string): void => {
      if (order.includes(id)) return;
      for (const v of Object.values(p[id]!.inputs)) if (isLink(v)) visit(String(v[0]));
      order.push(id);
    };
    item.outputs.forEach(visit);
    const values = new Map<string, Record<string, unknown>>();
    const outputs: Record<string, unknown> = {};
    const executed: string[] = [];
    const linked = (v: unknown): Record<string, unknown> => (isLink(v) ? (values.get(String(v[0])) ?? {}) : {});
    let success = true;
    try {
      for (const id of order) {
        if (dead) return;
        const node = p[id]!;
        const ins = node.inputs;
        lastNodeId = id;
        if (sid !== undefined) send("executing", { node: id, display_node: id, prompt_id: item.id }, sid);
        let value: Record<string, unknown> = {};
        const ct = node.class_type;
        if (ct.startsWith("CLIPTextEncode")) {
          const texts = ["text", "text_g", "text_l", "clip_l", "clip_g", "t5xxl"]
            .filter((k) => k in ins)
            .map((k) => (isLink(ins[k]) ? String(linked(ins[k]).value ?? "") : String(ins[k])));
          value = { text: texts[0] ?? "" };
        } else if (ct === "PrimitiveString" || ct === "PrimitiveInt") {
          value = { value: ins.value };
        } else if (ct === "ConditioningZeroOut") {
          value = { text: "" };
        } else if (ct === "EmptyLatentImage" || ct === "EmptySD3LatentImage") {
          value = {
            latent: {
              w: Number(ins.width),
              h: Number(ins.height),
              batch: Number(ins.batch_size),
              seeds: [],
              texts: [],
              negatives: [],
            } satisfies Latent,
          };
        } else if (ct === "RandomNoise") {
          value = { seed: ins.noise_seed };
        } else if (ct === "BasicGuider") {
          value = { text: linked(ins.conditioning).text };
        } else if (ct === "CFGGuider") {
          value = { text: linked(ins.positive).text, negative: linked(ins.negative).text };
        } else if (ct === "BasicScheduler") {
          value = { steps: ins.steps };
        } else if ((ct.startsWith("KSampler") && ct !== "KSamplerSelect") || ct === "SamplerCustom" || ct === "SamplerCustomAdvanced") {
          const latent = linked(ins.latent_image).latent as Latent;
          const seedIn = ct === "KSampler" ? ins.seed : ct === "SamplerCustomAdvanced" ? linked(ins.noise).seed : ins.noise_seed;
          const seed = Number(isLink(seedIn) ? linked(seedIn).value : seedIn);
          const text = String(ct === "SamplerCustomAdvanced" ? linked(ins.guider).text : (linked(ins.positive).text ?? ""));
          const negative = String(ct === "SamplerCustomAdvanced" ? (linked(ins.guider).negative ?? "") : (linked(ins.negative).text ?? ""));
          const steps = Number(ct === "SamplerCustomAdvanced" || ct === "SamplerCustom" ? (linked(ins.sigmas).steps ?? 4) : ins.steps);
          if (faults.failSeeds?.includes(seed)) throw new Failed(id, ct);
          if (faults.freezeSeeds?.includes(seed)) {
            while (!interruptFlag && !dead) await new Promise((r) => setTimeout(r, 5));
            if (dead) return;
            throw new Interrupted();
          }
          for (let s = 1; s <= steps; s++) {
            await new Promise((r) => setTimeout(r, stepDelay));
            if (dead) return;
            if (interruptFlag) throw new Interrupted();
            if (sid !== undefined) send("progress", { value: s, max: steps, prompt_id: item.id, node: id }, sid);
            if (opts.previews !== false && sid !== undefined && s === steps) {
              // A sampler preview: JPEG in real life (format 1); never an output image.
              const fmt = Buffer.alloc(4);
              fmt.writeUInt32BE(2);
              sendBinary(1, Buffer.concat([fmt, fakePng({ seed: -1, prompt: "preview", batchIndex: 0, width: 8, height: 8 })]), sid);
            }
          }
          value = {
            latent: {
              ...latent,
              seeds: [...latent.seeds, seed],
              texts: [...latent.texts, text],
              negatives: [...latent.negatives, negative],
            },
          };
        } else if (ct === "VAEDecode") {
          value = { images: linked(ins.samples).latent };
        } else if (isOutputClass(ct)) {
          const l = linked(ins.images).images as Latent | undefined;
          const lat: Latent = l ?? { w: 64, h: 64, batch: 1, seeds: [0], texts: [""], negatives: [""] };
          const scale = Math.min(1, maxSide / Math.max(lat.w, lat.h));
          const w = Math.max(1, Math.round(lat.w * scale));
          const h = Math.max(1, Math.round(lat.h * scale));
          const pngs = Array.from({ length: lat.batch }, (_, b) =>
            fakePng({
              seed: lat.seeds[0] ?? 0,
              prompt: lat.texts[0] ?? "",
              negative: lat.negatives[0] ?? "",
              batchIndex: b,
              width: w,
              height: h,
            }),
          );
          if (ct === "SaveImageWebsocket") {
            pngs.forEach((png, i) => {
              if (sid !== undefined) send("progress", { value: i, max: pngs.length, prompt_id: item.id, node: id }, sid);
              const fmt = Buffer.alloc(4);
              fmt.writeUInt32BE(2); // PNG
              sendBinary(1, Buffer.concat([fmt, png]), sid);
            });
          } else {
            const type = ct === "SaveImage" ? "output" : "temp";
            const images = pngs.map((png) => {
              fileCounter++;
              const filename =
                ct === "SaveImage"
                  ? `${String(ins.filename_prefix ?? "ComfyUI")}_${String(fileCounter).padStart(5, "0")}_.png`
                  : `ComfyUI_temp_fake_${String(fileCounter).padStart(5, "0")}_.png`;
              files.set(`${type}//${filename}`, png);
              return { filename, subfolder: "", type };
            });
            outputs[id] = { images };
            if (sid !== undefined) send("executed", { node: id, display_node: id, output: { images }, prompt_id: item.id }, sid);
          }
        } else {
          // Pass-through nodes (loaders, guidance, upscales): hand on the first linked value.
          const first = Object.values(ins).find(isLink);
          value = first ? { ...linked(first) } : {};
          if (ct === "CheckpointLoaderSimple") value = { model: ins.ckpt_name };
        }
        values.set(id, value);
        executed.push(id);
      }
      add("execution_success", { prompt_id: item.id });
    } catch (e) {
      success = false;
      if (e instanceof Interrupted) {
        add("execution_interrupted", { prompt_id: item.id, node_id: lastNodeId, node_type: p[lastNodeId ?? ""]?.class_type, executed });
      } else if (e instanceof Failed) {
        add("execution_error", {
          prompt_id: item.id,
          node_id: e.nodeId,
          node_type: e.nodeType,
          executed,
          exception_message: e.message,
          exception_type: "torch.OutOfMemoryError",
          traceback: ['  File "execution.py", line 1, in execute\n'],
          current_inputs: {},
          current_outputs: {},
        });
      } else throw e;
    }
    // prompt_worker: task_done writes history, then "executing" with node None goes to the client.
    history.set(item.id, {
      prompt: [item.number, item.id, item.prompt, item.extra, item.outputs],
      outputs,
      status: { status_str: success ? "success" : "error", completed: success, messages },
      meta: Object.fromEntries(
        Object.keys(outputs).map((id) => [id, { node_id: id, display_node: id, parent_node: null, real_node_id: id }]),
      ),
    });
    if (sid !== undefined) send("executing", { node: null, prompt_id: item.id }, sid);
    lastNodeId = undefined;
  }

  /** A foreign job: the worker is busy for holdMs; its events go to its own client only. */
  async function hold(item: QueueItem): Promise<void> {
    const sid = item.extra.client_id;
    if (sid !== undefined) send("execution_start", { prompt_id: item.id, timestamp: Date.now() }, sid);
    const until = Date.now() + (item.holdMs ?? 0);
    while (Date.now() < until && !interruptFlag && !dead) await new Promise((r) => setTimeout(r, 5));
    if (dead) return;
    history.set(item.id, {
      prompt: [item.number, item.id, item.prompt, item.extra, item.outputs],
      outputs: {},
      status: { status_str: "success", completed: true, messages: [] },
      meta: {},
    });
    if (sid !== undefined) send("executing", { node: null, prompt_id: item.id }, sid);
  }

  async function worker(): Promise<void> {
    while (!dead) {
      if (queue.length === 0 || hang.has("execute")) {
        await new Promise<void>((r) => (wake = r));
        continue;
      }
      queue.sort((a, b) => a.number - b.number);
      const item = queue.shift()!;
      running = item;
      clientId = item.extra.client_id;
      interruptFlag = false;
      statusUpdate();
      if (item.holdMs !== undefined) await hold(item);
      else await execute(item);
      running = undefined;
      clientId = undefined;
      if (dead) return;
      state.finished.push(item.id);
      statusUpdate();
      if (faults.killAfterPrompts !== undefined && state.finished.length >= faults.killAfterPrompts) {
        await state.kill();
        return;
      }
    }
  }

  // ---- HTTP --------------------------------------------------------------------------------------
  const authorized = (h: string | undefined): boolean => {
    if (!opts.auth) return true;
    if ("header" in opts.auth) return h === opts.auth.header;
    return h === `Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString("base64")}`;
  };
  const json = (res: http.ServerResponse, status: number, body: unknown): void => {
    res.writeHead(status, { "content-type": "application/json; charset=utf-8" });
    res.end(JSON.stringify(body));
  };
  const readBody = (req: http.IncomingMessage): Promise<string> =>
    new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      req.on("data", (d: Buffer) => parts.push(d));
      req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
      req.on("error", reject);
    });
  const routeName = (path: string): ComfyRoute | undefined => {
    const seg = path.split("/")[1] ?? "";
    return (["prompt", "history", "view", "ws", "queue", "system_stats", "object_info", "interrupt"] as const).find((r) => r === seg);
  };
  const stripPrefix = (pathname: string): string | undefined => {
    if (pathname.startsWith("/api/")) return pathname.slice(4);
    return opts.apiOnly ? undefined : pathname;
  };

  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url ?? "/", "http://fake");
    state.requests.push({ method: req.method ?? "", path: u.pathname, authorization: req.headers.authorization });
    if (!authorized(req.headers.authorization)) {
      res.writeHead(401, { "www-authenticate": 'Basic realm="comfyui"', "content-type": "text/plain" });
      res.end("401: Unauthorized");
      return;
    }
    const path = stripPrefix(u.pathname);
    if (path === undefined) {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("404: Not Found");
      return;
    }
    const route = routeName(path);
    if (route !== undefined && hang.has(route)) {
      hanging.add(res);
      return; // never answer
    }
    if (route !== undefined && garbage.has(route)) {
      if (route === "history") return json(res, 200, { [path.split("/")[2] ?? "x"]: { outputs: "nope", status: 7 } });
      if (route === "view") {
        res.writeHead(200, { "content-type": "image/png" });
        res.end("definitely not a png");
        return;
      }
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html><body><h1>502 Bad Gateway</h1> nginx</body></html>");
      return;
    }
    try {
      if (req.method === "POST" && path === "/prompt") {
        const body = JSON.parse((await readBody(req)) || "{}") as {
          prompt?: unknown;
          client_id?: string;
          prompt_id?: string;
          number?: number;
          front?: boolean;
        };
        let n: number;
        if (typeof body.number === "number") n = body.number;
        else {
          n = body.front ? -number : number;
          number++;
        }
        if (!("prompt" in body))
          return json(res, 400, {
            error: { type: "no_prompt", message: "No prompt provided", details: "No prompt provided", extra_info: {} },
            node_errors: {},
          });
        const v = validate(body.prompt);
        if (!v.ok) return json(res, 400, { error: v.error, node_errors: v.nodeErrors });
        const id = typeof body.prompt_id === "string" ? body.prompt_id : randomUUID();
        const extra = body.client_id === undefined ? {} : { client_id: body.client_id };
        const item: QueueItem = { number: n, id, prompt: body.prompt as QueueItem["prompt"], extra, outputs: v.outputs };
        queue.push(item);
        state.prompts.push({ id, clientId: body.client_id, prompt: item.prompt });
        state.maxInFlight = Math.max(state.maxInFlight, queue.length + (running ? 1 : 0));
        statusUpdate();
        wake?.();
        return json(res, 200, { prompt_id: id, number: n, node_errors: {} });
      }
      if (req.method === "GET" && path === "/prompt") return json(res, 200, queueInfo());
      if (req.method === "GET" && path === "/history") return json(res, 200, Object.fromEntries(history));
      if (req.method === "GET" && path.startsWith("/history/")) {
        const id = decodeURIComponent(path.slice("/history/".length));
        return json(res, 200, history.has(id) ? { [id]: history.get(id) } : {});
      }
      if (req.method === "GET" && path === "/view") {
        const filename = u.searchParams.get("filename") ?? "";
        if (filename === "" || filename.startsWith("/") || filename.includes("..")) return json(res, 400, {});
        const file = files.get(`${u.searchParams.get("type") ?? "output"}/${u.searchParams.get("subfolder") ?? ""}/${filename}`);
        if (!file) {
          res.writeHead(404);
          res.end();
          return;
        }
        res.writeHead(200, { "content-type": "image/png", "content-disposition": `filename="${filename}"` });
        res.end(file);
        return;
      }
      if (req.method === "GET" && path === "/queue") {
        const row = (i: QueueItem): unknown[] => [i.number, i.id, i.prompt, i.extra, i.outputs];
        return json(res, 200, {
          queue_running: running ? [row(running)] : [],
          queue_pending: [...queue].sort((a, b) => a.number - b.number).map(row),
        });
      }
      if (req.method === "POST" && path === "/queue") {
        const body = JSON.parse((await readBody(req)) || "{}") as { delete?: string[]; clear?: boolean };
        if (body.clear) queue.splice(0);
        for (const id of body.delete ?? []) {
          state.deleted.push(id);
          const i = queue.findIndex((q) => q.id === id);
          if (i >= 0) queue.splice(i, 1);
        }
        statusUpdate();
        res.writeHead(200);
        res.end();
        return;
      }
      if (req.method === "POST" && path === "/interrupt") {
        const text = await readBody(req);
        const body = (text ? JSON.parse(text) : {}) as { prompt_id?: string };
        state.interrupts.push({ promptId: body.prompt_id, running: running?.id });
        // Newer ComfyUI: with a prompt_id, only that prompt is interrupted (if it runs).
        if (body.prompt_id === undefined || body.prompt_id === running?.id) interruptFlag = true;
        res.writeHead(200);
        res.end();
        return;
      }
      if (req.method === "GET" && (path === "/object_info" || path.startsWith("/object_info/"))) {
        const cls = path.startsWith("/object_info/") ? decodeURIComponent(path.slice("/object_info/".length)) : undefined;
        const info: Record<string, unknown> = { ...coreObjectInfo(checkpoints, opts.comboV2), ...nodeClasses };
        if (cls === undefined) return json(res, 200, info);
        return json(res, 200, cls !== undefined && Object.hasOwn(info, cls) ? { [cls]: info[cls] } : {});
      }
      if (req.method === "GET" && path === "/system_stats") {
        return json(res, 200, {
          system: {
            os: "posix",
            ram_total: 68719476736,
            ram_free: 34359738368,
            comfyui_version: "0.3.99-fake",
            python_version: "3.12.3",
            pytorch_version: "2.7.0+cu128",
            embedded_python: false,
            argv: ["main.py", "--listen"],
          },
          devices: [
            {
              name: "cuda:0 Fake GPU : cudaMallocAsync",
              type: "cuda",
              index: 0,
              vram_total: 25769803776,
              vram_free: 24696061952,
              torch_vram_total: 0,
              torch_vram_free: 0,
            },
          ],
        });
      }
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("404: Not Found");
    } catch (e) {
      // aiohttp answers an unhandled exception with a plain 500.
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`500 Internal Server Error\n\nServer got itself in trouble: ${(e as Error).message}`);
    }
  });

  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req, socket, head) => {
    const u = new URL(req.url ?? "/", "http://fake");
    const path = stripPrefix(u.pathname);
    const refuse = (status: string): void => {
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (dead) return socket.destroy();
    if (!authorized(req.headers.authorization)) return refuse("401 Unauthorized");
    if (path !== "/ws") return refuse("404 Not Found");
    if (hang.has("ws")) {
      stalledUpgrades.add(socket); // never complete the handshake
      return;
    }
    if (faults.refuseReconnect && dropped) return refuse("503 Service Unavailable");
    wss.handleUpgrade(req, socket, head, (ws) => {
      let sid = u.searchParams.get("clientId") ?? "";
      if (sid === "") sid = randomUUID().replace(/-/g, "");
      sockets.get(sid)?.terminate(); // reusing an existing session replaces the old socket
      sockets.set(sid, ws);
      state.connections++;
      ws.on("close", () => {
        if (sockets.get(sid) === ws) sockets.delete(sid);
      });
      ws.on("error", () => undefined);
      raw(ws, JSON.stringify({ type: "status", data: { status: queueInfo(), sid } }));
      // On reconnect, the client of the running prompt is told the current node (no prompt_id).
      if (clientId === sid && lastNodeId !== undefined) raw(ws, JSON.stringify({ type: "executing", data: { node: lastNodeId } }));
    });
  });

  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}`;
  void worker();
  return state;
}

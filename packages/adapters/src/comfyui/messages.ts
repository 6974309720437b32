/**
 * ComfyUI's WebSocket messages, typed and validated at the edge with zod (server.py send_sync, the
 * events of execution.py and main.py's prompt_worker). A text frame is `{ type, data }`; a binary
 * frame is a 4-byte big-endian event type followed by its payload. Anything that does not fit is
 * dropped here, so the rest of the adapter only sees well-formed messages.
 */
import { z } from "zod";

const nodeId = z.union([z.string(), z.number()]).transform(String);
const maybeNode = nodeId.nullable().optional();

/** One schema per message type pickrank reads; other types (crystools.monitor, progress_state …) are ignored. */
const SCHEMAS = {
  /** Queue length, to every socket; `sid` on the first message of a connection. */
  status: z
    .object({
      status: z
        .object({ exec_info: z.object({ queue_remaining: z.number() }).loose() })
        .loose()
        .optional(),
      sid: z.string().optional(),
    })
    .loose(),
  execution_start: z.object({ prompt_id: z.string() }).loose(),
  execution_cached: z.object({ prompt_id: z.string(), nodes: z.array(nodeId).default([]) }).loose(),
  /** A node starts; `node: null` (with the prompt_id) means the prompt is finished and its history written. */
  executing: z.object({ prompt_id: z.string().optional(), node: maybeNode }).loose(),
  /** A sampler step: value of max. */
  progress: z.object({ prompt_id: z.string().optional(), node: maybeNode, value: z.number(), max: z.number() }).loose(),
  executed: z.object({ prompt_id: z.string(), node: nodeId, output: z.record(z.string(), z.unknown()).nullable().optional() }).loose(),
  execution_success: z.object({ prompt_id: z.string() }).loose(),
  execution_error: z
    .object({
      prompt_id: z.string(),
      node_id: maybeNode,
      node_type: z.string().nullable().optional(),
      exception_type: z.string().nullable().optional(),
      exception_message: z.string().nullable().optional(),
    })
    .loose(),
  execution_interrupted: z.object({ prompt_id: z.string(), node_id: maybeNode, node_type: z.string().nullable().optional() }).loose(),
} as const;

type Schemas = typeof SCHEMAS;
/** The message types pickrank reads. */
export type ComfyMessageType = keyof Schemas;
/** A validated text message: `{ type, data }` with `data` typed per `type`. */
export type ComfyMessage = { [K in ComfyMessageType]: { type: K; data: z.infer<Schemas[K]> } }[ComfyMessageType];
export type ExecutionErrorData = z.infer<Schemas["execution_error"]>;

const envelope = z.object({ type: z.string(), data: z.unknown() });

/** What reading one text frame gave: a message, a type pickrank does not read, or a frame that breaks the protocol. */
export type ParsedText =
  | { kind: "message"; message: ComfyMessage }
  | { kind: "ignored"; type: string }
  | { kind: "invalid"; reason: string };

/** Reads one text frame. Never throws. */
export function parseTextFrame(text: string): ParsedText {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { kind: "invalid", reason: "not JSON" };
  }
  const env = envelope.safeParse(raw);
  if (!env.success) return { kind: "invalid", reason: "not { type, data }" };
  const { type, data } = env.data;
  if (!Object.hasOwn(SCHEMAS, type)) return { kind: "ignored", type };
  const schema = SCHEMAS[type as ComfyMessageType];
  const r = schema.safeParse(data);
  if (!r.success)
    return { kind: "invalid", reason: `${type}: ${r.error.issues[0]?.path.join(".") ?? ""} ${r.error.issues[0]?.message ?? "invalid"}` };
  return { kind: "message", message: { type, data: r.data } as ComfyMessage };
}

/** Binary event types (comfy_execution / server.py BinaryEventTypes). */
export const BINARY_EVENT = { PREVIEW_IMAGE: 1, UNENCODED_PREVIEW_IMAGE: 2, TEXT: 3, PREVIEW_IMAGE_WITH_METADATA: 4 } as const;

/** An image frame: a sampler preview, or a SaveImageWebsocket output while that node runs. */
export interface ImageFrame {
  image: Buffer;
  format: "jpeg" | "png" | "webp" | "unknown";
  /** Only PREVIEW_IMAGE_WITH_METADATA frames name their prompt and node. */
  promptId?: string;
  nodeId?: string;
}

const frameMeta = z.object({ prompt_id: z.string().optional(), node_id: nodeId.optional(), image_type: z.string().optional() }).loose();

function formatOf(mime: string | undefined): ImageFrame["format"] {
  if (mime === "image/png") return "png";
  if (mime === "image/jpeg") return "jpeg";
  if (mime === "image/webp") return "webp";
  return "unknown";
}

/**
 * Reads one binary frame: PREVIEW_IMAGE (event 1, a 4-byte format 1 JPEG / 2 PNG, the bytes) and
 * PREVIEW_IMAGE_WITH_METADATA (event 4, a 4-byte metadata length, metadata JSON, the bytes).
 * Other events and short or broken frames give undefined.
 */
export function parseBinaryFrame(buf: Buffer): ImageFrame | undefined {
  if (buf.length < 8) return undefined;
  const event = buf.readUInt32BE(0);
  if (event === BINARY_EVENT.PREVIEW_IMAGE) {
    const fmt = buf.readUInt32BE(4);
    return { image: Buffer.from(buf.subarray(8)), format: fmt === 1 ? "jpeg" : fmt === 2 ? "png" : "unknown" };
  }
  if (event !== BINARY_EVENT.PREVIEW_IMAGE_WITH_METADATA) return undefined;
  const len = buf.readUInt32BE(4);
  if (8 + len > buf.length) return undefined;
  let meta: z.infer<typeof frameMeta>;
  try {
    const r = frameMeta.safeParse(JSON.parse(buf.subarray(8, 8 + len).toString("utf8")));
    if (!r.success) return undefined;
    meta = r.data;
  } catch {
    return undefined;
  }
  const frame: ImageFrame = { image: Buffer.from(buf.subarray(8 + len)), format: formatOf(meta.image_type) };
  if (meta.prompt_id !== undefined) frame.promptId = meta.prompt_id;
  if (meta.node_id !== undefined) frame.nodeId = meta.node_id;
  return frame;
}

import WebSocket from "ws";
import { z } from "zod";
import { PickrankError } from "@pickrank/contract";
import { authError, HttpClient, parseEndpoint, preview, protocolError, type HttpOptions } from "../http.ts";
import type { ComfyWorkflow, ObjectInfo } from "./workflow.ts";

/**
 * Options of the ComfyUI HTTP client: the HTTP options (timeouts in ms, retries), credentials sent as
 * an Authorization header, and whether routes are prefixed with "/api". Requests fail with
 * BACKEND_UNREACHABLE, TIMEOUT, BACKEND_AUTH (401/403), BACKEND_REJECTED (other HTTP errors) or
 * BACKEND_PROTOCOL (an answer of the wrong shape).
 */
export interface ComfyClientOptions extends Partial<HttpOptions> {
  /** "user:password" (Basic) or a full Authorization header value, for servers behind a proxy. */
  auth?: string;
  /** Put "/api" before every route (ComfyUI serves both; some proxies forward only /api). */
  apiPrefix?: boolean;
}

export interface ImageRef {
  filename: string;
  subfolder: string;
  type: string;
}

const imageRef = z.object({ filename: z.string(), subfolder: z.string().default(""), type: z.string().default("output") }).loose();
const historyEntry = z
  .object({
    outputs: z.record(z.string(), z.object({ images: z.array(imageRef).optional() }).loose()).default({}),
    status: z
      .object({
        status_str: z.string().optional(),
        completed: z.boolean().optional(),
        messages: z.array(z.tuple([z.string(), z.unknown()]).rest(z.unknown())).optional(),
      })
      .loose()
      .optional(),
  })
  .loose();
export type HistoryEntry = z.infer<typeof historyEntry>;
const historySchema = z.record(z.string(), historyEntry);
const promptResponse = z.object({ prompt_id: z.string(), number: z.number().optional(), node_errors: z.unknown().optional() }).loose();
const objectInfoSchema = z.record(z.string(), z.object({}).loose());
const queueSchema = z.object({ queue_running: z.array(z.array(z.unknown())), queue_pending: z.array(z.array(z.unknown())) }).loose();

/** Reads ComfyUI's 400 body ({error:{type,message,details}, node_errors:{id:{errors,class_type}}}) into one readable line. */
export function describeComfyError(status: number, body: string): { message: string; details?: Record<string, unknown> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { message: preview(body, 200) };
  }
  const o = (parsed ?? {}) as { error?: unknown; node_errors?: unknown };
  const parts: string[] = [];
  const err = o.error;
  if (typeof err === "string") parts.push(err);
  else if (err && typeof err === "object") {
    const e = err as { type?: unknown; message?: unknown; details?: unknown };
    const head = typeof e.message === "string" ? e.message : "error";
    const details = typeof e.details === "string" && e.details !== "" ? `: ${e.details.replace(/\n/g, "; ")}` : "";
    parts.push(`${head}${typeof e.type === "string" ? ` (${e.type})` : ""}${details}`);
  }
  const failing: { node: string; classType?: string; errors: string[] }[] = [];
  if (o.node_errors && typeof o.node_errors === "object" && !Array.isArray(o.node_errors)) {
    for (const [node, v] of Object.entries(o.node_errors as Record<string, unknown>)) {
      const ne = (v ?? {}) as { errors?: unknown; class_type?: unknown };
      const errors = Array.isArray(ne.errors)
        ? ne.errors.map((x) => {
            const r = (x ?? {}) as { message?: unknown; details?: unknown };
            return [r.message, r.details].filter((s) => typeof s === "string" && s !== "").join(": ");
          })
        : [];
      const f: { node: string; classType?: string; errors: string[] } = { node, errors };
      if (typeof ne.class_type === "string") f.classType = ne.class_type;
      failing.push(f);
    }
  }
  if (failing.length > 0) {
    parts.push(
      `failing nodes: ${failing.map((f) => `${f.classType ?? "node"} #${f.node} (${f.errors.join("; ") || "no reason given"})`).join(", ")}`,
    );
  }
  if (parts.length === 0) parts.push(preview(body, 200));
  return { message: parts.join("; "), details: { nodeErrors: failing, serverError: err ?? null, status } };
}

/** A thin client for ComfyUI's HTTP routes and WebSocket, on fetch and `ws`. */
export class ComfyClient {
  readonly id: string;
  readonly http: HttpClient;
  private readonly prefix: string;

  constructor(url: string, opts: ComfyClientOptions = {}) {
    const ep = parseEndpoint(url, opts.auth, "ComfyUI");
    this.id = `comfyui@${ep.base}`;
    this.prefix = opts.apiPrefix ? "/api" : "";
    this.http = new HttpClient(
      ep,
      this.id,
      { timeoutMs: opts.timeoutMs ?? 30_000, retries: opts.retries ?? 2, retryDelayMs: opts.retryDelayMs ?? 250 },
      describeComfyError,
    );
  }

  private p(path: string): string {
    return `${this.prefix}${path}`;
  }

  async queuePrompt(prompt: ComfyWorkflow, clientId: string, signal?: AbortSignal): Promise<{ promptId: string; number?: number }> {
    const body = await this.http.request("POST", this.p("/prompt"), { json: { prompt, client_id: clientId }, signal });
    const r = promptResponse.safeParse(body);
    if (!r.success) throw protocolError(this.id, "POST /prompt", `${preview(JSON.stringify(body))}`, "{ prompt_id, number, node_errors }");
    return r.data.number === undefined ? { promptId: r.data.prompt_id } : { promptId: r.data.prompt_id, number: r.data.number };
  }

  /** The history entry of one prompt, or undefined while it has not finished. */
  async history(promptId: string, signal?: AbortSignal): Promise<HistoryEntry | undefined> {
    const route = `/history/${encodeURIComponent(promptId)}`;
    const body = await this.http.request("GET", this.p(route), { signal });
    const r = historySchema.safeParse(body);
    if (!r.success)
      throw protocolError(this.id, `GET ${route}`, preview(JSON.stringify(body) ?? ""), "{ [prompt_id]: { outputs, status } }");
    return r.data[promptId];
  }

  async view(ref: ImageRef, signal?: AbortSignal): Promise<Buffer> {
    return this.http.request<Buffer>("GET", this.p("/view"), {
      query: { filename: ref.filename, subfolder: ref.subfolder, type: ref.type },
      expect: "bytes",
      signal,
    });
  }

  /** Stops the running prompt; newer servers take prompt_id so only that one is stopped. */
  async interrupt(promptId?: string, signal?: AbortSignal): Promise<void> {
    await this.http.request("POST", this.p("/interrupt"), {
      json: promptId === undefined ? {} : { prompt_id: promptId },
      expect: "none",
      signal,
    });
  }

  async deleteQueued(promptIds: string[], signal?: AbortSignal): Promise<void> {
    await this.http.request("POST", this.p("/queue"), { json: { delete: promptIds }, expect: "none", signal });
  }

  async queue(signal?: AbortSignal): Promise<{ running: string[]; pending: string[] }> {
    const body = await this.http.request("GET", this.p("/queue"), { signal });
    const r = queueSchema.safeParse(body);
    if (!r.success) throw protocolError(this.id, "GET /queue", preview(JSON.stringify(body) ?? ""), "{ queue_running, queue_pending }");
    const ids = (items: unknown[][]): string[] => items.map((i) => String(i[1]));
    return { running: ids(r.data.queue_running), pending: ids(r.data.queue_pending) };
  }

  /**
   * GET /object_info (every node class the server has) or /object_info/{class}: per class its inputs as
   * `[type, options]` tuples, outputs and the output_node flag, as detectWorkflow's `objectInfo` takes it.
   * Throws BACKEND_PROTOCOL when the answer is not an object of class objects, and the HTTP client's codes.
   */
  async objectInfo(signal?: AbortSignal, nodeClass?: string): Promise<ObjectInfo> {
    const route = nodeClass === undefined ? "/object_info" : `/object_info/${encodeURIComponent(nodeClass)}`;
    const body = await this.http.request("GET", this.p(route), { signal });
    const r = objectInfoSchema.safeParse(body);
    if (!r.success) throw protocolError(this.id, `GET ${route}`, preview(JSON.stringify(body) ?? ""), "an object of node classes");
    return r.data as ObjectInfo;
  }

  async systemStats(signal?: AbortSignal): Promise<Record<string, unknown>> {
    const body = await this.http.request("GET", this.p("/system_stats"), { signal });
    if (body === null || typeof body !== "object" || Array.isArray(body) || !("system" in body)) {
      throw protocolError(this.id, "GET /system_stats", preview(JSON.stringify(body) ?? ""), "{ system, devices }");
    }
    return body as Record<string, unknown>;
  }

  /** Checkpoint file names the server offers (CheckpointLoaderSimple's ckpt_name list). */
  async listCheckpoints(signal?: AbortSignal): Promise<string[]> {
    const info = await this.objectInfo(signal, "CheckpointLoaderSimple");
    const spec = (info.CheckpointLoaderSimple as { input?: { required?: { ckpt_name?: unknown } } } | undefined)?.input?.required
      ?.ckpt_name;
    // Old servers: [["a.safetensors", …], {…}]; newer: ["COMBO", { options: [...] }].
    if (Array.isArray(spec)) {
      if (Array.isArray(spec[0])) return spec[0].filter((x): x is string => typeof x === "string");
      const o = spec[1] as { options?: unknown } | undefined;
      if (spec[0] === "COMBO" && Array.isArray(o?.options)) return o.options.filter((x): x is string => typeof x === "string");
    }
    if (info.CheckpointLoaderSimple === undefined) {
      throw new PickrankError(
        "BACKEND_REJECTED",
        `${this.id} has no CheckpointLoaderSimple node (GET /object_info/CheckpointLoaderSimple returned {})`,
        { details: { backend: this.id } },
      );
    }
    throw protocolError(
      this.id,
      "GET /object_info/CheckpointLoaderSimple",
      "a ckpt_name input of an unknown shape",
      '[[names…], {…}] or ["COMBO", { options }]',
    );
  }

  /** Opens /ws?clientId=…; events of prompts queued with the same client_id come only to this socket. */
  openSocket(clientId: string, timeoutMs: number): Promise<WebSocket> {
    const base = this.http.endpoint.base.replace(/^http/, "ws");
    const url = `${base}${this.p("/ws")}?clientId=${encodeURIComponent(clientId)}`;
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = {};
      if (this.http.endpoint.authorization !== undefined) headers.authorization = this.http.endpoint.authorization;
      const ws = new WebSocket(url, { headers, handshakeTimeout: timeoutMs });
      const fail = (why: string, code: "BACKEND_UNREACHABLE" | "TIMEOUT" | "BACKEND_REJECTED", cause?: unknown): void => {
        ws.removeAllListeners();
        ws.on("error", () => undefined);
        ws.terminate();
        reject(
          new PickrankError(code, `${this.id} WebSocket ${this.p("/ws")} could not be opened: ${why}`, {
            cause,
            details: { backend: this.id },
          }),
        );
      };
      ws.once("open", () => {
        ws.removeAllListeners("error");
        ws.removeAllListeners("unexpected-response");
        resolve(ws);
      });
      ws.once("unexpected-response", (_req, res) => {
        const status = res.statusCode ?? 0;
        if (status !== 401 && status !== 403) return fail(`HTTP ${status || "?"}`, "BACKEND_REJECTED");
        ws.removeAllListeners();
        ws.on("error", () => undefined);
        ws.terminate();
        reject(authError(this.id, `GET ${this.p("/ws")} (WebSocket)`, status, "", this.http.endpoint.authorization !== undefined));
      });
      ws.once("error", (e) => fail(e.message, /timed? ?out/i.test(e.message) ? "TIMEOUT" : "BACKEND_UNREACHABLE", e));
    });
  }
}

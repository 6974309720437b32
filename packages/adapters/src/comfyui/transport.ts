/**
 * The WebSocket side of ComfyUI: one socket per run (its clientId routes our prompts' events to us),
 * frames validated into typed messages (messages.ts), and reconnection with backoff when the socket
 * drops. It knows nothing of prompts: the run's trackers decide what messages mean.
 */
import type WebSocket from "ws";
import { isPickrankError } from "@pickrank/contract";
import { sleep } from "../util.ts";
import { parseBinaryFrame, parseTextFrame, type ComfyMessage, type ImageFrame } from "./messages.ts";

/** What the transport needs of a socket (ws.WebSocket fits; tests pass an EventEmitter). */
export interface SocketLike {
  on(event: "message", listener: (raw: WebSocket.RawData, isBinary: boolean) => void): unknown;
  on(event: "close" | "error", listener: (...args: unknown[]) => void): unknown;
  removeAllListeners(event?: string): unknown;
  close(): void;
  terminate(): void;
}

/** Opens /ws?clientId=…; rejects with BACKEND_UNREACHABLE, BACKEND_AUTH, TIMEOUT or BACKEND_REJECTED. */
export type OpenSocket = (clientId: string, timeoutMs: number) => Promise<SocketLike>;

export interface TransportHandlers {
  message(m: ComfyMessage): void;
  image(f: ImageFrame): void;
  /** The socket is back after a drop: events may have been missed, so look at /queue and /history. */
  reconnected(): void;
  /** The socket is gone for good (reconnects spent or refused): only polling tells what happens now. */
  lost(): void;
}

export interface TransportOptions {
  /** Time limit for opening the socket (ms). */
  connectTimeoutMs: number;
  /** Attempts to reopen a dropped socket before giving up on it. */
  reconnectAttempts: number;
  /** First delay before reopening (ms; default 100), doubled per attempt up to 2 s. */
  reconnectDelayMs?: number;
}

export type TransportState = "idle" | "open" | "reconnecting" | "lost" | "closed";

export class ComfyTransport {
  /** When the last frame arrived (ms since epoch; 0 before any). */
  lastMessageAt = 0;
  /** Text frames that broke the protocol (not JSON, wrong shape); they are dropped. */
  invalidFrames = 0;
  private current: SocketLike | undefined;
  private status: TransportState = "idle";
  private readonly stop = new AbortController();

  constructor(
    private readonly openSocket: OpenSocket,
    readonly clientId: string,
    private readonly o: TransportOptions,
    private readonly h: TransportHandlers,
  ) {}

  get state(): TransportState {
    return this.status;
  }

  /** Whether events reach us now. */
  get open(): boolean {
    return this.status === "open";
  }

  /**
   * Opens the first socket. Resolves true when it is open, false when the server answers HTTP but
   * the socket cannot be had (a proxy that refuses or stalls the upgrade: the run goes on by polling).
   * Throws BACKEND_UNREACHABLE (no server) and BACKEND_AUTH (credentials refused).
   */
  async connect(): Promise<boolean> {
    try {
      this.attach(await this.openSocket(this.clientId, this.o.connectTimeoutMs));
      return true;
    } catch (e) {
      if (!isPickrankError(e) || e.code === "BACKEND_UNREACHABLE" || e.code === "BACKEND_AUTH") throw e;
      this.status = "lost";
      return false;
    }
  }

  /** Feeds one frame as the socket delivers it (public so tests can drive the transport without a socket). */
  receive(raw: WebSocket.RawData, isBinary: boolean): void {
    this.lastMessageAt = Date.now();
    const buf = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    if (isBinary) {
      const frame = parseBinaryFrame(buf);
      if (frame) this.h.image(frame);
      return;
    }
    const r = parseTextFrame(buf.toString("utf8"));
    if (r.kind === "message") this.h.message(r.message);
    else if (r.kind === "invalid") this.invalidFrames++;
  }

  /** Closes the socket and stops reconnecting; no handler is called after this. */
  close(): void {
    this.status = "closed";
    this.stop.abort();
    const s = this.current;
    this.current = undefined;
    s?.removeAllListeners();
    s?.on("error", () => undefined);
    s?.close();
  }

  private attach(ws: SocketLike): void {
    this.current = ws;
    this.status = "open";
    ws.on("message", (raw, isBinary) => {
      if (this.current === ws) this.receive(raw, isBinary);
    });
    ws.on("error", () => undefined); // "close" follows
    ws.on("close", () => {
      if (this.current !== ws || this.status === "closed") return;
      this.current = undefined;
      void this.reconnect();
    });
  }

  private async reconnect(): Promise<void> {
    this.status = "reconnecting";
    const first = this.o.reconnectDelayMs ?? 100;
    for (let attempt = 0; attempt < this.o.reconnectAttempts; attempt++) {
      try {
        await sleep(Math.min(first * 2 ** attempt, 2000), this.stop.signal);
        const ws = await this.openSocket(this.clientId, this.o.connectTimeoutMs);
        if (this.stop.signal.aborted) {
          ws.terminate();
          return;
        }
        this.attach(ws);
        this.h.reconnected();
        return;
      } catch {
        if (this.stop.signal.aborted) return;
      }
    }
    this.status = "lost";
    this.h.lost();
  }
}

/**
 * One state machine per queued ComfyUI prompt (the `prompt_id` the server gave), fed by WebSocket
 * messages AND by the answers of GET /queue and GET /history/{id}, so a lost message or a dropped
 * socket never loses a prompt. It does no I/O: each input returns what the run should do next.
 *
 *   queued ──(execution_start / executing / progress, or /queue lists it running)──► running
 *   queued|running ──(executing null, or /history has it)──► finishing ──► done
 *   any ──(execution_error / execution_interrupted / history status "error" / gone from queue and history)──► failed
 */
import { PickrankError } from "@pickrank/contract";
import type { HistoryEntry } from "./client.ts";
import type { ComfyMessage, ExecutionErrorData } from "./messages.ts";

export type PromptPhase = "queued" | "running" | "finishing" | "done" | "failed";

/** The server's queue as GET /queue gave it: prompt ids running and waiting, in order. */
export interface QueueSnapshot {
  running: string[];
  pending: string[];
  /** When the request was sent (ms): an answer asked before a prompt existed says nothing about it. */
  askedAt: number;
}

/** What the run should do after an input. */
export type TrackerAction =
  | { kind: "none" }
  | { kind: "progress"; step: number; steps: number }
  /** Finished on the server: read its outputs (the history entry when already in hand). */
  | { kind: "collect"; entry?: HistoryEntry }
  | { kind: "failed"; error: PickrankError }
  /** Neither running nor waiting: GET /history/{id} tells whether it finished or is gone. */
  | { kind: "check-history" };

const NONE: TrackerAction = { kind: "none" };
/** Answers in a row that show the prompt in neither /queue nor /history before it counts as gone. */
const MISSING_LIMIT = 2;

export class PromptTracker {
  phase: PromptPhase = "queued";
  startedAt: number | undefined;
  /** Last evidence that this prompt advances (a message about it, its start); ms since epoch. */
  lastProgressAt: number;
  /** Prompts of other clients ahead of ours, from the last /queue answer. */
  foreignAhead = 0;
  /** SaveImageWebsocket images received for this prompt, in order. */
  readonly images: Buffer[] = [];
  private missing = 0;
  /** Since when /queue showed this prompt waiting with nothing running (ms), if it still does. */
  private idleQueueSince: number | undefined;

  constructor(
    readonly promptId: string,
    /** The backend id, for messages. */
    readonly who: string,
    /** When POST /prompt answered (ms since epoch). */
    readonly queuedAt: number,
  ) {
    this.lastProgressAt = queuedAt;
  }

  /** Whether the prompt still occupies the server (waiting or rendering). */
  get onServer(): boolean {
    return this.phase === "queued" || this.phase === "running";
  }

  get settled(): boolean {
    return this.phase === "done" || this.phase === "failed";
  }

  /** A WebSocket message about this prompt (routed by prompt_id, or to the running prompt when it has none). */
  onMessage(m: ComfyMessage, at: number): TrackerAction {
    if (this.settled || this.phase === "finishing") return NONE;
    this.lastProgressAt = Math.max(this.lastProgressAt, at);
    switch (m.type) {
      case "execution_start":
      case "execution_cached":
      case "executed":
      case "execution_success":
        this.start(at);
        return NONE;
      case "executing":
        this.start(at);
        return m.data.node === null || m.data.node === undefined ? this.toFinishing() : NONE;
      case "progress":
        this.start(at);
        return { kind: "progress", step: m.data.value, steps: m.data.max };
      case "execution_error":
        return this.toFailed(executionErrorFromMessage(this.who, this.promptId, m.data));
      case "execution_interrupted":
        return this.toFailed(interruptedError(this.who, this.promptId, `at ${m.data.node_type ?? "node"} #${m.data.node_id ?? "?"}`));
      default:
        return NONE;
    }
  }

  /** A SaveImageWebsocket image of this prompt. */
  onImage(image: Buffer, at: number): void {
    if (this.settled) return;
    this.start(at);
    this.lastProgressAt = Math.max(this.lastProgressAt, at);
    this.images.push(image);
  }

  /** A GET /queue answer. `ours` says which prompt ids belong to this run (to count other clients' work ahead). */
  onQueue(q: QueueSnapshot, ours: (id: string) => boolean, now: number): TrackerAction {
    if (!this.onServer || q.askedAt < this.queuedAt) return NONE;
    const pendingAt = q.pending.indexOf(this.promptId);
    if (q.running.includes(this.promptId)) {
      this.missing = 0;
      this.idleQueueSince = undefined;
      this.foreignAhead = 0;
      this.start(now);
      return NONE;
    }
    if (pendingAt >= 0) {
      this.missing = 0;
      const ahead = [...q.running, ...q.pending.slice(0, pendingAt)];
      this.foreignAhead = ahead.filter((id) => !ours(id)).length;
      // Waiting while nothing runs: the queue does not move (its worker is stuck).
      if (q.running.length > 0) this.idleQueueSince = undefined;
      else this.idleQueueSince ??= q.askedAt;
      return NONE;
    }
    return { kind: "check-history" };
  }

  /** A GET /history/{id} answer: the entry, or undefined when the server has none (yet). */
  onHistory(entry: HistoryEntry | undefined): TrackerAction {
    if (this.settled || this.phase === "finishing") return NONE;
    if (entry === undefined) {
      // Only counts after /queue said it is not there: then it finished (history written first) or is gone.
      return NONE;
    }
    if (entry.status?.status_str === "error") return this.toFailed(historyError(this.who, this.promptId, entry));
    const action = this.toFinishing();
    return action.kind === "collect" ? { kind: "collect", entry } : action;
  }

  /** /queue did not list it and /history has no entry: gone after MISSING_LIMIT such answers in a row. */
  onMissing(): TrackerAction {
    if (!this.onServer) return NONE;
    this.missing++;
    if (this.missing < MISSING_LIMIT) return NONE;
    return this.toFailed(
      new PickrankError(
        "BACKEND_REJECTED",
        `${this.who} dropped prompt ${this.promptId}: it is neither in the queue nor in the history ` +
          "(deleted by another client, or the server restarted)",
        {
          details: { backend: this.who, promptId: this.promptId },
        },
      ),
    );
  }

  /**
   * How long the prompt has made no headway (ms): running without a sign of progress (counted only
   * when `progressVisible`, i.e. a socket brings the events), or waiting in a queue where nothing
   * runs. Waiting behind other work that runs never counts.
   */
  stalledFor(now: number, progressVisible: boolean): number {
    if (this.phase === "running") return progressVisible ? Math.max(0, now - this.lastProgressAt) : 0;
    if (this.phase === "queued" && this.idleQueueSince !== undefined) return Math.max(0, now - this.idleQueueSince);
    return 0;
  }

  /** Outputs read: the prompt is done. */
  finish(): void {
    if (!this.settled) this.phase = "done";
  }

  /** Failed for a reason found outside the tracker (outputs unreadable, the run stalled …). */
  fail(): void {
    if (!this.settled) this.phase = "failed";
  }

  /** Collecting failed before anything was decided (history not written yet): back to waiting for it. */
  reopen(): void {
    if (this.phase === "finishing") this.phase = this.startedAt === undefined ? "queued" : "running";
  }

  private start(at: number): void {
    if (this.phase !== "queued") return;
    this.idleQueueSince = undefined;
    this.phase = "running";
    this.startedAt = at;
    this.lastProgressAt = Math.max(this.lastProgressAt, at);
  }

  private toFinishing(): TrackerAction {
    if (this.phase === "finishing" || this.settled) return NONE;
    this.phase = "finishing";
    return { kind: "collect" };
  }

  private toFailed(error: PickrankError): TrackerAction {
    if (this.settled) return NONE;
    this.phase = "failed";
    return { kind: "failed", error };
  }
}

/** BACKEND_REJECTED from an execution_error message: the node, its class and the exception. */
export function executionErrorFromMessage(who: string, pid: string, d: Partial<ExecutionErrorData>): PickrankError {
  const where = `${d.node_type ?? "node"} #${d.node_id ?? "?"}`;
  const what = [d.exception_type, d.exception_message].filter((x) => typeof x === "string" && x !== "").join(": ");
  return new PickrankError("BACKEND_REJECTED", `${who} failed prompt ${pid} at ${where}: ${what.trim() || "no message"}`, {
    details: { backend: who, promptId: pid, node: d.node_id, classType: d.node_type, exceptionType: d.exception_type },
  });
}

function interruptedError(who: string, pid: string, where: string): PickrankError {
  return new PickrankError("ABORTED", `${who} interrupted prompt ${pid} ${where} (someone pressed Cancel or called /interrupt)`, {
    details: { backend: who, promptId: pid },
  });
}

/** The error a history entry with status "error" records. */
export function historyError(who: string, pid: string, h: HistoryEntry): PickrankError {
  for (const m of h.status?.messages ?? []) {
    if (m[0] === "execution_error" && m[1] && typeof m[1] === "object")
      return executionErrorFromMessage(who, pid, m[1] as Partial<ExecutionErrorData>);
    if (m[0] === "execution_interrupted") return interruptedError(who, pid, "(history)");
  }
  return new PickrankError("BACKEND_REJECTED", `${who} reports prompt ${pid} as failed (status "error") without a message`, {
    details: { backend: who, promptId: pid },
  });
}

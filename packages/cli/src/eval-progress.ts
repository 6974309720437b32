/**
 * The progress of `pickrank eval run` on stderr: one bar over every candidate of every configuration
 * (the CLI's ProgressBar: a redrawn line on a terminal, a line per quarter in a log), with the scoring
 * rate, the ETA from that rate, and each server's render throughput, so a slow member of a pool shows.
 */
import type { EvalEvent } from "@pickrank/eval";
import { ProgressBar, type Io } from "./ui.ts";

/** Seconds as "42s", "3m05s", "1h02m". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, "0")}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, "0")}m`;
}

/**
 * Turns the engine's events into the bar and warnings. Rates count this run's work only (a resumed
 * run's earlier candidates are in the count, not in the rate).
 */
export class EvalProgress {
  readonly #bar: ProgressBar;
  readonly #start: number;
  readonly #perServer = new Map<string, number>();
  #total = 0;
  #done = 0;
  #doneAtStart = 0;
  #failed = 0;

  constructor(
    private readonly io: Io,
    private readonly quiet: boolean,
    private readonly now: () => number = Date.now,
  ) {
    this.#start = now();
    this.#bar = new ProgressBar(io, "eval", "items", quiet);
  }

  /** Feeds one engine event. */
  on(e: EvalEvent): void {
    switch (e.type) {
      case "start":
        this.#total = e.total;
        this.#done = this.#doneAtStart = e.done;
        break;
      case "rendered":
        if (!e.reused) this.#perServer.set(e.backend, (this.#perServer.get(e.backend) ?? 0) + 1);
        break;
      case "scored":
        this.#done++;
        break;
      case "failed":
        this.#failed++;
        break;
      case "warning":
        this.io.stderr.write(`pickrank: ${e.config}: ${e.message}\n`);
        return;
    }
    this.#bar.update(this.#done + this.#failed, this.#total, this.detail());
  }

  /** "1.8 img/s · ETA 3m05s · comfyui@host:8188 0.9/s, a1111@host:7860 0.9/s" (what follows the count). */
  detail(): string {
    return this.#parts(true).join(" · ");
  }

  /** The parts of detail(), with or without the ETA. */
  #parts(withEta: boolean): string[] {
    const secs = Math.max(1e-3, (this.now() - this.#start) / 1000);
    const newDone = this.#done - this.#doneAtStart;
    const rate = newDone / secs;
    const left = this.#total - this.#done - this.#failed;
    const eta = rate > 0 ? `ETA ${formatDuration(left / rate)}` : "ETA ?";
    const servers = [...this.#perServer].map(([b, n]) => `${b} ${(n / secs).toFixed(2)}/s`).join(", ");
    return [
      `${rate.toFixed(2)} img/s`,
      ...(withEta ? [eta] : []),
      ...(this.#failed > 0 ? [`${this.#failed} failed`] : []),
      ...(servers ? [servers] : []),
    ];
  }

  /** Ends the bar with a one-line summary. */
  finish(): void {
    const secs = (this.now() - this.#start) / 1000;
    const rates = this.#parts(false).join(" · ");
    this.#bar.finish(this.quiet ? undefined : `eval: ${this.#done}/${this.#total} scored in ${formatDuration(secs)} · ${rates}`);
  }
}

/**
 * What people see: progress on stderr (bars on a terminal, sparse lines otherwise), tables on
 * stdout, errors printed readably with an exit code. Programs use --json and read stdout only.
 */
import path from "node:path";
import { ERROR_TABLE, isPickrankError, toPickrankError, type ErrorCode } from "@pickrank/contract";

export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
}

export const processIo: Io = { stdout: process.stdout, stderr: process.stderr };

export function writeJson(io: Io, value: unknown): void {
  io.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/**
 * Exit code of an error: the contract's code table (`ERROR_TABLE[code].exit`): 2 (USAGE) for bad
 * arguments and input files (BAD_INPUT, BAD_IMAGE, NOT_FOUND, …), 3 (PARTIAL) for part of the work
 * done, 130 for an interrupted run, 1 for the rest.
 */
export function exitCodeFor(code: ErrorCode): number {
  return ERROR_TABLE[code].exit;
}

/** Prints an error (and, with --json, the same error as JSON on stdout) and returns the exit code. */
export function reportError(io: Io, e: unknown, json: boolean): number {
  const err = toPickrankError(e);
  io.stderr.write(`pickrank: ${err.message} [${err.code}]\n`);
  if (!isPickrankError(e) || err.code === "INTERNAL") {
    if (e instanceof Error && e.stack && process.env.PICKRANK_DEBUG) io.stderr.write(e.stack + "\n");
  }
  let cause: unknown = err.cause;
  while (cause instanceof Error && process.env.PICKRANK_DEBUG) {
    io.stderr.write(`  caused by: ${cause.message}\n`);
    cause = cause.cause;
  }
  if (json) writeJson(io, { error: err.toJSON() });
  return exitCodeFor(err.code);
}

export type Align = "left" | "right";

export function renderTable(headers: string[], rows: string[][], align: Align[] = []): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const fmt = (cells: string[]) =>
    cells
      .map((cell, c) => (align[c] === "right" ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!)))
      .join("  ")
      .trimEnd();
  return [fmt(headers), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(fmt)].join("\n") + "\n";
}

export function formatBytes(n: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/**
 * A progress bar on stderr. On a terminal it redraws one line (at most ~10 times a second); on a
 * pipe or file it prints a line at the start, at each quarter and at the end, so logs stay short.
 */
export class ProgressBar {
  #last = 0;
  #lastQuarter = -1;
  #done = 0;
  #total = 0;
  #detail = "";
  #finished = false;
  readonly #start = Date.now();

  constructor(
    private readonly io: Io,
    private readonly label: string,
    private readonly unit: "bytes" | "items" = "items",
    private readonly quiet = false,
  ) {}

  /** Sets the count (and an optional text after it: rates, ETA) and redraws when it is time. */
  update(done: number, total: number, detail = ""): void {
    if (this.quiet || this.#finished) return;
    this.#done = done;
    this.#total = total;
    this.#detail = detail;
    const now = Date.now();
    if (this.io.stderr.isTTY) {
      if (now - this.#last < 100 && done < total) return;
      this.#last = now;
      this.io.stderr.write(`\r${this.#line()}\x1b[K`);
    } else {
      const quarter = total > 0 ? Math.floor((4 * done) / total) : 0;
      if (quarter !== this.#lastQuarter) {
        this.#lastQuarter = quarter;
        this.io.stderr.write(this.#line() + "\n");
      }
    }
  }

  finish(message?: string): void {
    if (this.quiet || this.#finished) return;
    this.#finished = true;
    if (this.io.stderr.isTTY) this.io.stderr.write(`\r${message ?? this.#line()}\x1b[K\n`);
    else if (message) this.io.stderr.write(message + "\n");
  }

  #line(): string {
    const { label } = this;
    const total = this.#total;
    const done = this.#done;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const width = 24;
    const fill = Math.round(frac * width);
    const bar = "█".repeat(fill) + "░".repeat(width - fill);
    const secs = (Date.now() - this.#start) / 1000;
    const amount =
      this.unit === "bytes"
        ? `${formatBytes(done)}/${total > 0 ? formatBytes(total) : "?"}${secs > 0 ? ` ${formatBytes(done / secs)}/s` : ""}`
        : `${done}/${total}`;
    return `${label} ${bar} ${(frac * 100).toFixed(0).padStart(3)}% ${amount}${this.#detail ? ` · ${this.#detail}` : ""}`;
  }
}

/**
 * One bar per step of a multi-step job (each file of a download, each graph of a conversion): a new
 * key finishes the previous bar and starts the next.
 */
export class StepProgress {
  #bar: ProgressBar | undefined;
  #key: string | undefined;

  constructor(
    private readonly io: Io,
    private readonly quiet = false,
  ) {}

  update(key: string, unit: "bytes" | "items", done: number, total: number): void {
    if (key !== this.#key) {
      this.#bar?.finish();
      this.#key = key;
      this.#bar = new ProgressBar(this.io, key, unit, this.quiet);
    }
    this.#bar!.update(done, total);
  }

  finish(): void {
    this.#bar?.finish();
    this.#bar = undefined;
    this.#key = undefined;
  }
}

/**
 * The status line naming the device. Short by default; PICKRANK_DEBUG=1 gives each skipped device's
 * whole reason (what failed and what to install).
 */
export function deviceLine(scorer: {
  describeDevice(verbose?: boolean): string;
  device: string;
  deviceReport: { skipped: unknown[] };
}): string {
  const verbose = Boolean(process.env.PICKRANK_DEBUG);
  const hint =
    !verbose && scorer.device === "cpu" && scorer.deviceReport.skipped.length > 0 ? " (PICKRANK_DEBUG=1 says why; README: GPU)" : "";
  return `pickrank: ${scorer.describeDevice(verbose)}${hint}\n`;
}

/** Relative to the working folder when inside it, else absolute (no "../../" chains). */
export function shortPath(file: string, cwd = process.cwd()): string {
  const rel = path.relative(cwd, file);
  return rel === "" || rel.startsWith("..") || path.isAbsolute(rel) ? file : rel;
}

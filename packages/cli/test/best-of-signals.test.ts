/**
 * The signal handling of a run, in-process: SIGINT, SIGTERM and SIGHUP abort the run's signal with an
 * ABORTED error naming the signal; copies of the same signal that a wrapper forwards within
 * DUPLICATE_MS count as one; a later signal quits at once with exit code 130.
 */
import { Writable } from "node:stream";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PickrankError } from "@pickrank/contract";
import { DUPLICATE_MS, interruptOnSignals } from "../src/interrupt.ts";

function io() {
  let text = "";
  const stream = new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { io: { stdout: stream, stderr: stream }, text: () => text };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("interruptOnSignals", () => {
  it.each(["SIGINT", "SIGTERM", "SIGHUP"] as const)("%s aborts the run with ABORTED naming it", (sig) => {
    const o = io();
    const exits: number[] = [];
    const it = interruptOnSignals(o.io, { quiet: false, what: "best-of", exit: (c) => exits.push(c) });
    try {
      process.emit(sig, sig);
      expect(it.signal.aborted).toBe(true);
      const reason = it.signal.reason as PickrankError;
      expect(reason).toBeInstanceOf(PickrankError);
      expect(reason.code).toBe("ABORTED");
      expect(reason.message).toBe(`best-of was cancelled by ${sig === "SIGINT" ? "Ctrl-C" : sig}`);
      expect(o.text()).toContain("stopping our prompts on the server");
      expect(exits).toEqual([]);
    } finally {
      it.dispose();
    }
  });

  it("a forwarded copy of the first signal is ignored; a second signal later quits at once with 130", () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const o = io();
    const exits: number[] = [];
    const it = interruptOnSignals(o.io, { quiet: true, what: "best-of", exit: (c) => exits.push(c) });
    try {
      process.emit("SIGINT", "SIGINT");
      vi.advanceTimersByTime(DUPLICATE_MS / 10);
      process.emit("SIGINT", "SIGINT"); // pnpm's / tsx's forwarded copy
      expect(exits).toEqual([]);
      vi.advanceTimersByTime(DUPLICATE_MS);
      process.emit("SIGTERM", "SIGTERM");
      expect(exits).toEqual([130]);
      expect(o.text()).toContain("SIGTERM again: quitting now; finished candidates stay in the journal [ABORTED]");
    } finally {
      it.dispose();
    }
  });

  it("dispose removes every handler it installed", () => {
    const before = ["SIGINT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s));
    const it = interruptOnSignals(io().io, { quiet: true, what: "best-of" });
    expect(["SIGINT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s))).toEqual(before.map((n) => n + 1));
    it.dispose();
    expect(["SIGINT", "SIGTERM", "SIGHUP"].map((s) => process.listenerCount(s))).toEqual(before);
  });
});

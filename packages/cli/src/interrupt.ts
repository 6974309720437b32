/**
 * Ctrl-C, SIGTERM (timeout, docker stop, CI cancel) and SIGHUP (terminal closed) all cancel a run the
 * same way: the signal aborts it, the backend takes our prompts off the server, the output folder's
 * lock is released and every finished candidate stays in the journal (its appends are synchronous, so
 * none is ever half-written when a handler runs). A second signal quits at once with exit code 130;
 * the lock file still goes (the lock's exit hook).
 *
 * One Ctrl-C often arrives more than once: the terminal sends it to the whole process group, and a
 * wrapper (pnpm, tsx's watcher/runner) forwards it again a few milliseconds later. Signals within
 * DUPLICATE_MS of the first count as that same one; only a later one quits at once. Our handlers stay
 * installed until the run ends, so a wrapper's fallback "no handler: exit now" never fires mid-cancel.
 */
import { EXIT, PickrankError } from "@pickrank/contract";
import type { Io } from "./ui.ts";

/** Forwarded copies of one signal arrive within this many milliseconds of the original. */
export const DUPLICATE_MS = 1000;

const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export interface Interrupt {
  /** Aborts (with an ABORTED PickrankError naming the signal) at the first signal. */
  readonly signal: AbortSignal;
  /** Removes the handlers; the process's default behaviour returns. */
  dispose(): void;
}

/**
 * Installs the handlers for the duration of a run.
 * @param exit how to quit at the second signal (tests replace it); default process.exit.
 */
export function interruptOnSignals(io: Io, o: { quiet: boolean; what: string; exit?: (code: number) => void }): Interrupt {
  const ctl = new AbortController();
  let firstAt = 0;
  const handler = (sig: NodeJS.Signals): void => {
    const now = Date.now();
    if (!ctl.signal.aborted) {
      firstAt = now;
      const key = sig === "SIGINT" ? "Ctrl-C" : sig;
      if (!o.quiet)
        io.stderr.write(
          `\npickrank: cancelling (${key}): stopping our prompts on the server; ` +
            `${key === "Ctrl-C" ? "Ctrl-C" : "a second signal"} again quits at once…\n`,
        );
      ctl.abort(new PickrankError("ABORTED", `${o.what} was cancelled by ${key}`, { details: { signal: sig } }));
      return;
    }
    if (now - firstAt < DUPLICATE_MS) return; // the same Ctrl-C, forwarded by a wrapper
    io.stderr.write(`pickrank: ${sig} again: quitting now; finished candidates stay in the journal [ABORTED]\n`);
    (o.exit ?? ((code: number) => process.exit(code)))(EXIT.INTERRUPTED);
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: ctl.signal,
    dispose: () => {
      for (const s of SIGNALS) process.removeListener(s, handler);
    },
  };
}

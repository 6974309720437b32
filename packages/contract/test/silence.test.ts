import { describe, expect, it } from "vitest";
import { SilenceTimer } from "../src/silence.ts";

/** Blocks this process (the event loop and its timers) for `ms` milliseconds. */
function block(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {}
}

describe("SilenceTimer", () => {
  it("calls onSilence once after ms without restart(), and restart() starts the count again", async () => {
    let calls = 0;
    const fired = new Promise<void>((resolve) => {
      const t = new SilenceTimer(30, () => {
        calls++;
        resolve();
      });
      t.restart();
      t.restart();
    });
    await fired;
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(1);
  });

  it("clear() stops it: nothing is called", async () => {
    let calls = 0;
    const t = new SilenceTimer(20, () => calls++);
    t.restart();
    t.clear();
    await new Promise((r) => setTimeout(r, 100));
    expect(calls).toBe(0);
  });

  it("a tick made late by a blocked event loop judges nothing: the answer due meanwhile comes first", async () => {
    // Limit 100 ms; the answer (restart, then clear) is due at 150 ms; at 10 ms this process blocks for 400 ms.
    // On waking both are due and the timer runs first: it must not take the 400 ms held up as the other side's silence.
    let calls = 0;
    const t = new SilenceTimer(100, () => calls++);
    t.restart();
    const answered = new Promise<void>((resolve) =>
      setTimeout(() => {
        t.clear();
        resolve();
      }, 150),
    );
    setTimeout(() => block(400), 10);
    await answered;
    await new Promise((r) => setTimeout(r, 50));
    expect(calls).toBe(0);
  });
});

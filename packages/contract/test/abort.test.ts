import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { nap } from "../src/abort.ts";

describe("nap", () => {
  it("ends when woken and leaves no listener on the signal, however many naps a loop takes", async () => {
    const ctl = new AbortController();
    for (let i = 0; i < 20; i++) await nap(600_000, Promise.resolve(), ctl.signal);
    expect(getEventListeners(ctl.signal, "abort")).toHaveLength(0);
  });

  it("ends (without throwing) when the signal fires, and at once for a signal that has fired", async () => {
    const ctl = new AbortController();
    const napping = nap(600_000, new Promise(() => {}), ctl.signal);
    ctl.abort(new Error("stop"));
    await expect(napping).resolves.toBeUndefined();
    await expect(nap(600_000, new Promise(() => {}), ctl.signal)).resolves.toBeUndefined();
  });

  it("ends after ms when neither wake nor signal comes, and a wake that rejects ends it too", async () => {
    await expect(nap(1, new Promise(() => {}))).resolves.toBeUndefined();
    await expect(nap(600_000, Promise.reject(new Error("x")))).resolves.toBeUndefined();
  });
});

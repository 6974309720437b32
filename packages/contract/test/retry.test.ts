import { describe, expect, it } from "vitest";
import { retry } from "../src/retry.ts";

describe("retry", () => {
  it("retries retryable failures and returns the first success, telling onRetry each failed attempt", async () => {
    const seen: number[] = [];
    const r = await retry(
      async (attempt) => {
        if (attempt < 3) throw new Error(`fail ${attempt}`);
        return attempt;
      },
      { retries: 5, minDelayMs: 1, onRetry: (_e, a) => seen.push(a) },
    );
    expect(r).toBe(3);
    expect(seen).toEqual([1, 2]);
  });

  it("throws a failure that shouldRetry refuses at once, as it is", async () => {
    let calls = 0;
    const err = new Error("fatal");
    await expect(
      retry(
        async () => {
          calls++;
          throw err;
        },
        { retries: 5, minDelayMs: 1, shouldRetry: () => false },
      ),
    ).rejects.toBe(err);
    expect(calls).toBe(1);
  });

  it("throws the last error when the retries are spent", async () => {
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error(`fail ${calls}`);
        },
        { retries: 2, minDelayMs: 1 },
      ),
    ).rejects.toThrow("fail 3");
    expect(calls).toBe(3);
  });

  it("stops waiting when the signal fires and throws its reason", async () => {
    const ctl = new AbortController();
    const reason = new Error("stop");
    const p = retry(
      async () => {
        throw new Error("down");
      },
      { retries: 10, minDelayMs: 60_000, signal: ctl.signal },
    );
    setTimeout(() => ctl.abort(reason), 10);
    await expect(p).rejects.toBe(reason);
  });
});

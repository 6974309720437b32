import { PickrankError } from "@pickrank/contract";

/** Drains an async iterable (a backend's generate()) into an array. */
export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const g of it) out.push(g);
  return out;
}

/** The error a promise rejects with; fails the test when it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; details?: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error("expected a rejection");
}

/** The PickrankError a promise rejects with; fails the test on any other error or when it resolves. */
export async function pickrankRejection(p: Promise<unknown>): Promise<PickrankError> {
  const e = await rejection(p);
  if (!(e instanceof PickrankError)) throw new Error(`expected a PickrankError but got ${String(e)}`, { cause: e });
  return e;
}

/** Polls `cond` every 25 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function waitFor(cond: () => Promise<boolean> | boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

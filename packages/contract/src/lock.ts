/**
 * Lock files: one holder per thing (a model being downloaded or converted, an output folder being
 * written). Created with O_EXCL and holding `{pid, host, startedAt}`; holders touch it every few
 * seconds, so a lock left by a crashed process is recognised (dead pid on this host, or not touched
 * for a while when it comes from another host on a shared disk) and taken over.
 * Two waiters taking over the same stale lock at the same instant could both proceed; that needs a
 * crash plus a three-way race, and callers keep their writes atomic so the worst outcome is redundant work.
 */
import { rmSync } from "node:fs";
import { open, readFile, rm, stat, utimes } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sleep } from "./abort.ts";
import { fsError, makeDir } from "./fs.ts";

const HEARTBEAT_MS = 5_000;
const STALE_MS = 10 * 60_000;
const POLL_MS = 100;

/** What a lock file holds. */
export interface LockHolder {
  pid: number;
  host: string;
  startedAt?: string;
}

/** True when a process with this pid runs on this host (EPERM: it runs, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The holder of a lock file, or undefined when it is gone or unreadable. */
export async function readLockHolder(file: string): Promise<Partial<LockHolder> | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as Partial<LockHolder>;
  } catch {
    return undefined;
  }
}

/**
 * On this host a lock is stale only when its process is gone (a long synchronous step in a live
 * holder must not lose its lock). A lock from another host is stale when not touched for STALE_MS;
 * so is an empty or unreadable one (a writer that died between create and write).
 */
async function isStale(file: string): Promise<{ stale: boolean; holder?: Partial<LockHolder> }> {
  try {
    const [text, st] = await Promise.all([readFile(file, "utf8"), stat(file)]);
    const old = Date.now() - st.mtimeMs > STALE_MS;
    let holder: Partial<LockHolder>;
    try {
      holder = JSON.parse(text) as Partial<LockHolder>;
    } catch {
      return { stale: old || text === "" };
    }
    if ((holder.host === undefined || holder.host === os.hostname()) && typeof holder.pid === "number")
      return { stale: !pidAlive(holder.pid), holder };
    return { stale: old, holder };
  } catch {
    // Vanished meanwhile: not stale, just try to create it again.
    return { stale: false };
  }
}

/** Options of taking a lock file: wait for a live holder (default) or fail with `onHeld`'s error. */
export interface LockOptions {
  /** Wait while a live holder has it (default). Otherwise `onHeld` is called and its error thrown. */
  wait?: boolean;
  signal?: AbortSignal;
  /** The error to throw when `wait` is false and a live process holds the lock. */
  onHeld?: (holder: Partial<LockHolder>) => Error;
  /** The CLI option or API field the lock's folder came from ("--out"), named in FILESYSTEM errors. */
  option?: string;
}

/** A held lock: `release()` removes the file (idempotent). */
export interface HeldLock {
  readonly file: string;
  release(): Promise<void>;
}

/**
 * Takes the lock at `file` (creating its folder). Waits (abortably) while another live holder has it,
 * or throws `onHeld(holder)` when `wait` is false.
 * @throws the signal's reason when aborted; FILESYSTEM when the lock cannot be created; onHeld's error.
 */
export async function acquireLock(file: string, opts: LockOptions = {}): Promise<HeldLock> {
  const option = opts.option ? { option: opts.option } : {};
  try {
    await makeDir(path.dirname(file));
  } catch (e) {
    throw fsError(e, { action: "create the folder of lock file", path: file, ...option });
  }
  for (;;) {
    try {
      const fh = await open(file, "wx");
      try {
        await fh.writeFile(
          JSON.stringify({ pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString() } satisfies LockHolder),
        );
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw fsError(e, { action: "create lock file", path: file, ...option });
      const { stale, holder } = await isStale(file);
      if (stale) {
        await rm(file, { force: true });
        continue;
      }
      if (opts.wait === false && opts.onHeld && holder) throw opts.onHeld(holder);
      await sleep(POLL_MS, opts.signal);
    }
  }
  const beat = setInterval(() => {
    const now = new Date();
    utimes(file, now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  let released = false;
  // A process that exits without release() (a second Ctrl-C, process.exit) still frees the lock.
  const onExit = (): void => {
    if (!released) rmSync(file, { force: true });
  };
  process.once("exit", onExit);
  return {
    file,
    async release() {
      if (released) return;
      released = true;
      clearInterval(beat);
      process.removeListener("exit", onExit);
      await rm(file, { force: true });
    },
  };
}

/** Runs `fn` holding the lock at `file`; waits (abortably) while another holder has it. */
export async function withLock<T>(file: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(file, signal ? { signal } : {});
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}

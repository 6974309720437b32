/**
 * A lock file per thing being downloaded or converted, so two pulls of the same model (two processes,
 * or two calls in one process) never write the same .part file or folder at once: the second waits,
 * then finds the work done. Created with O_EXCL; holders touch it every few seconds, so a lock left by
 * a crashed process is recognised (dead pid on this host, or not touched for a while) and taken over.
 * Two waiters taking over the same stale lock at the same instant could both proceed; that needs a
 * crash plus a three-way race, and the worst outcome is a redundant download, since every file is
 * verified and renamed into place whole.
 */
import { mkdir, open, readFile, rm, stat, utimes } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sleep } from "./http.ts";

const HEARTBEAT_MS = 5_000;
const STALE_MS = 10 * 60_000;

interface LockInfo {
  pid: number;
  host: string;
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

/**
 * On this host a lock is stale only when its process is gone (a long synchronous step in a live
 * holder must not lose its lock). A lock from another host (a cache on a shared disk) is stale when
 * not touched for STALE_MS; so is an empty one (a writer that died between create and write).
 */
async function isStale(file: string): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(file, "utf8"), stat(file)]);
    const old = Date.now() - st.mtimeMs > STALE_MS;
    let info: Partial<LockInfo>;
    try {
      info = JSON.parse(text) as Partial<LockInfo>;
    } catch {
      return old;
    }
    if (info.host === os.hostname() && typeof info.pid === "number") return !pidAlive(info.pid);
    return old;
  } catch {
    // Vanished meanwhile: not stale, just try to create it again.
    return false;
  }
}

/** Runs `fn` holding the lock at `file`; waits (abortably) while another holder has it. */
export async function withLock<T>(file: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  await mkdir(path.dirname(file), { recursive: true });
  for (;;) {
    try {
      const fh = await open(file, "wx");
      try {
        await fh.writeFile(JSON.stringify({ pid: process.pid, host: os.hostname() } satisfies LockInfo));
      } finally {
        await fh.close();
      }
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      if (await isStale(file)) {
        await rm(file, { force: true });
        continue;
      }
      await sleep(100, signal);
    }
  }
  const beat = setInterval(() => {
    const now = new Date();
    utimes(file, now, now).catch(() => undefined);
  }, HEARTBEAT_MS);
  beat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(beat);
    await rm(file, { force: true });
  }
}

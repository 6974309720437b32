/**
 * A lock file per thing being downloaded or converted, so two pulls of the same model (two processes,
 * or two calls in one process) never write the same .part file or folder at once: the second waits,
 * then finds the work done. Created with O_EXCL; holders touch it every few seconds, so a lock left by
 * a crashed process is recognised (dead pid on this host, or not touched for a while) and taken over.
 */
import { mkdir, open, readFile, rm, stat, utimes } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { sleep } from "./http.ts";

const HEARTBEAT_MS = 5_000;
const STALE_MS = 60_000;

interface LockInfo {
  pid: number;
  host: string;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function isStale(file: string): Promise<boolean> {
  try {
    const [text, st] = await Promise.all([readFile(file, "utf8"), stat(file)]);
    if (Date.now() - st.mtimeMs > STALE_MS) return true;
    const info = JSON.parse(text) as Partial<LockInfo>;
    return info.host === os.hostname() && typeof info.pid === "number" && !pidAlive(info.pid);
  } catch (e) {
    // Vanished meanwhile: not stale, just retry the create. Unparsable: a writer between open and
    // write; give it until the mtime rule applies.
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

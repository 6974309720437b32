/** Files written whole or not at all, and filesystem failures as coded errors that name the path. */
import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { PickrankError } from "./errors.ts";

/** A sibling temp name: same folder (so rename is atomic), unique per writer, dot-named. */
export function tempSibling(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

const ERRNO_WORDS: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOTDIR: "a part of the path is a file, not a folder",
  EISDIR: "it is a folder, not a file",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EROFS: "the filesystem is read-only",
  EEXIST: "something else is already there",
  ENAMETOOLONG: "the name is too long",
  ELOOP: "too many symbolic links",
  EMFILE: "too many open files",
  ENOENT: "it does not exist",
};

/** What a filesystem call was for, so its error names the action, the path and the option to change. */
export interface FsErrorContext {
  /** What we were doing: "write the output PNG", "create the output folder". */
  action: string;
  path: string;
  /** The CLI option or API field the path came from ("--out"), so the user knows what to change. */
  option?: string;
  /** What a working path looks like ("a writable folder"). */
  expected?: string;
}

/**
 * A Node.js filesystem error as a PickrankError: ENOENT → NOT_FOUND, every other errno → FILESYSTEM,
 * with the path, the option it came from and the reason in words. Non-errno errors keep their code
 * when they already are PickrankErrors.
 */
export function fsError(e: unknown, ctx: FsErrorContext): PickrankError {
  if (e instanceof PickrankError) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const words = (errno && ERRNO_WORDS[errno]) ?? (e instanceof Error ? e.message : String(e));
  const from = ctx.option ? ` (${ctx.option})` : "";
  const expected = ctx.expected ? `; expected ${ctx.expected}` : "";
  const details = { path: ctx.path, ...(ctx.option ? { option: ctx.option } : {}), ...(errno ? { errno } : {}) };
  const message = `Could not ${ctx.action} ${ctx.path}${from}: ${words}${errno ? ` (${errno})` : ""}${expected}`;
  if (errno === "ENOENT") return new PickrankError("NOT_FOUND", message, { cause: e, details });
  return new PickrankError("FILESYSTEM", message, { cause: e, details });
}

/**
 * Creates a folder and its missing parents, like `mkdir -p`, with a bounded number of steps.
 * Node's own `mkdir(dir, { recursive: true })` never returns on filesystems that answer ENOENT for a
 * folder whose parent exists (procfs: `mkdir -p /proc/x` spins at 100 % CPU in libuv); here each
 * level is tried at most twice, so such a path fails with the filesystem's own errno instead.
 * @throws the raw errno error (callers wrap it with fsError and their context).
 */
export async function makeDir(dir: string): Promise<void> {
  const target = path.resolve(dir);
  try {
    await mkdir(target);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      if ((await stat(target)).isDirectory()) return;
      throw e;
    }
    const parent = path.dirname(target);
    if (code !== "ENOENT" || parent === target) throw e;
    // A missing parent: create it, then this level once more (a second ENOENT is the filesystem's answer).
    await makeDir(parent);
    try {
      await mkdir(target);
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === "EEXIST" && (await stat(target)).isDirectory()) return;
      throw e2;
    }
  }
}

/**
 * Writes a file so that readers see the old file or the whole new one, never half: write a temp
 * sibling, fsync (after a crash the name must point at complete bytes, not an empty file), rename.
 * A crash leaves at most a dot-named temp file. Creates the parent folder.
 * @throws FILESYSTEM / NOT_FOUND (fsError) naming the file.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string, option?: string): Promise<void> {
  const target = path.resolve(file);
  const tmp = tempSibling(target);
  try {
    await makeDir(path.dirname(target));
    const fh = await open(tmp, "wx");
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw fsError(e, { action: "write", path: file, ...(option ? { option } : {}) });
  }
}

/** Whether anything (file or folder) is at `p`. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import { toPickrankError } from "../errors.ts";

/** A sibling temp name: same folder (so rename is atomic), unique per writer. */
export function tempSibling(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/**
 * Writes a file so that readers see the old file or the whole new one, never half: write a temp
 * sibling, fsync (after a crash the name must point at complete bytes, not an empty file), rename.
 * A crash leaves at most a dot-named temp file. Creates the parent folder.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string): Promise<void> {
  const target = path.resolve(file);
  const tmp = tempSibling(target);
  try {
    await mkdir(path.dirname(target), { recursive: true });
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
    throw toPickrankError(e, "INTERNAL", `Could not write ${file}`);
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

import { randomBytes } from "node:crypto";
import { mkdir, open, rename, rm } from "node:fs/promises";
import path from "node:path";

/** A sibling temp name: same folder (so rename is atomic), unique per writer. */
export function tempSibling(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
}

/**
 * Writes a file so that readers see either nothing or the whole file: write a temp sibling,
 * fsync, rename. A crash leaves at most a dot-named temp file, never a half-written target.
 */
export async function writeFileAtomic(file: string, data: Uint8Array | string, opts: { overwrite?: boolean } = {}): Promise<void> {
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = tempSibling(path.resolve(file));
  const fh = await open(tmp, opts.overwrite === false ? "wx" : "w");
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

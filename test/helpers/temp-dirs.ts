/**
 * Temp folders a test file leaves behind on purpose until it ends (a converted tiny model shared by its
 * tests): test/helpers/setup.ts removes them after the file's last test. Imports nothing heavy, so the
 * setup file costs every test file nothing.
 */
import { rm } from "node:fs/promises";

const dirs: string[] = [];

/** Registers a folder to remove once the current test file has run. */
export function removeAfterFile(dir: string): void {
  dirs.push(dir);
}

/** Removes every registered folder (idempotent). */
export async function removeRegistered(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

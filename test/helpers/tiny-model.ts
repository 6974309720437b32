/**
 * The tiny CLIP of the fixtures, converted once per test file into a temp folder. Tests that need
 * a real model (scorer, CLI, selector) share it instead of converting again; the folder goes after
 * the file's last test (test/helpers/setup.ts), or earlier with removeTinyModels().
 */
import { mkdtemp } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { convertModel } from "@pickrank/core";
import { tinyClipDir } from "./paths.ts";
import { removeAfterFile, removeRegistered } from "./temp-dirs.ts";

const cache = new Map<string, Promise<string>>();

export function tinyModel(dtype: "fp32" | "fp16" | "int8" = "fp32"): Promise<string> {
  let p = cache.get(dtype);
  if (!p) {
    p = (async () => {
      const root = await mkdtemp(path.join(os.tmpdir(), "pickrank-tiny-"));
      removeAfterFile(root);
      const out = path.join(root, `tiny-${dtype}`);
      await convertModel(tinyClipDir, { out, dtype });
      return out;
    })();
    cache.set(dtype, p);
  }
  return p;
}

/** Removes the converted models now (every folder registered in temp-dirs.ts: only they register). */
export async function removeTinyModels(): Promise<void> {
  await removeRegistered();
  cache.clear();
}

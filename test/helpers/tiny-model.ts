/**
 * The tiny CLIP of the fixtures, converted once per test file into a temp folder. Tests that need
 * a real model (scorer, CLI, selector) share it instead of converting again; the folder goes after
 * the file's last test (test/helpers/setup.ts), or earlier with removeTinyModels().
 */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { convertModel } from "@pickrank/core";
import { tinyClipDir } from "./paths.ts";
import { removeAfterFile } from "./temp-dirs.ts";

const cache = new Map<string, Promise<string>>();
const dirs: string[] = [];

export function tinyModel(dtype: "fp32" | "fp16" | "int8" = "fp32"): Promise<string> {
  let p = cache.get(dtype);
  if (!p) {
    p = (async () => {
      const root = await mkdtemp(path.join(os.tmpdir(), "pickrank-tiny-"));
      dirs.push(root);
      removeAfterFile(root);
      const out = path.join(root, `tiny-${dtype}`);
      await convertModel(tinyClipDir, { out, dtype });
      return out;
    })();
    cache.set(dtype, p);
  }
  return p;
}

export async function removeTinyModels(): Promise<void> {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  cache.clear();
}

import path from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file lives in test/helpers). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
/** The shared fixtures: golden outputs of the Python reference and the tiny CLIP. Tests only. */
export const sharedDir = path.resolve(repoRoot, "../shared");
export const referenceDir = path.join(sharedDir, "fixtures", "pickscore-reference");
export const tinyClipDir = path.join(referenceDir, "tiny-clip");

/** The result object's JSON form (result.json, `--json`) and the model it names. */
import { PickrankError } from "@pickrank/contract";
import type { BestOfBatchResult, BestOfResult, ModelInfo, SelectorScorer } from "./types.ts";

/** The model a result names: its folder, hub repo and revision when known, dtype. */
export function modelInfo(scorer: Pick<SelectorScorer, "modelDir" | "manifest">): ModelInfo {
  const m = scorer.manifest;
  const info: ModelInfo = { dir: scorer.modelDir, dtype: m.dtype };
  if (m.source.repo !== undefined) info.repo = m.source.repo;
  if (m.source.revision !== undefined) info.revision = m.source.revision;
  return info;
}

/** The result as JSON: images and embeddings left out (each kept image has its `file`), errors as {code, message, details}. */
export function serializeResult(r: BestOfResult | BestOfBatchResult): unknown {
  // A hand walk instead of a JSON.stringify replacer: Buffer.toJSON would first expand every image into a number array.
  const walk = (v: unknown): unknown => {
    if (v instanceof PickrankError) return v.toJSON();
    if (v instanceof Uint8Array || v instanceof Float32Array) return undefined;
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === "object") {
      const o: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) {
        // comfyPrompt (CandidateMeta): the whole API prompt per candidate; the kept PNGs and the journal hold it.
        if (k === "image" || k === "embedding" || k === "comfyPrompt" || x === undefined) continue;
        o[k] = walk(x);
      }
      return o;
    }
    return v;
  };
  return walk(r);
}

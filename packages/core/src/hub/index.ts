export { cacheRoot, listModels } from "./cache.ts";
export { pullModel, DEFAULT_MODEL_REPO, DEFAULT_TOKENIZER_REPO, type PullOptions, type PullResult } from "./pull.ts";
export { pruneCache, diskUsage, type PruneOptions, type PruneResult, type PrunedEntry } from "./prune.ts";

export { bestOf, serializeResult, modelInfo } from "./select.ts";
export { selectDiverse, DEFAULT_DIVERSE_THRESHOLD, type DiverseSkip } from "./diverse.ts";
export { spearman, kendall, averageRanks } from "./rank-stats.ts";
export { readPngText, readPngChunks, encodePngChunks, setPngText, textChunk, isPng, type PngChunk } from "./png-text.ts";
export { OutputDir, infotext, pickrankChunk, renderSettings, toPngWithMetadata, RESULT_FILE, JOURNAL_DIR, JOURNAL_FILE } from "./output.ts";
export { formatScore, formatProb } from "./format.ts";
export { scoringPrompt } from "./prompt-syntax.ts";
export { resolveScorePrompt, CLIP_CONTENT_TOKENS, type ScorePrompt, type ScorePromptRequest } from "./score-prompt.ts";
export type * from "./types.ts";

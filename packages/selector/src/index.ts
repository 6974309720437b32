export { bestOf, randomSeed } from "./select.ts";
export { serializeResult, modelInfo } from "./result.ts";
export { checkBestOfOptions, checkSettings, namer, type Namer } from "./options.ts";
export { groupFailures, describeFailures } from "./outcome.ts";
export { rankCandidates, selectTop, type Selection } from "./rank.ts";
export {
  produce,
  failedCandidate,
  type Arrival,
  type CandidateJournal,
  type JournalRecord,
  type ProduceReport,
  type ProduceRequest,
} from "./produce.ts";
export { consumeAndEmbed, type Embedded, type ScoreConsumerOptions, type ScoreConsumerReport } from "./score-consumer.ts";
export { runPass, type PassContext, type PassInput, type PassOutput } from "./pass.ts";
export { selectDiverse, DEFAULT_DIVERSE_THRESHOLD, type DiverseSkip } from "./diverse.ts";
// Rank correlations live in core (model verify uses Kendall τ-b too).
export { averageRanks, kendall, spearman } from "@pickrank/core";
export { readPngText, readPngChunks, encodePngChunks, setPngText, textChunk, isPng, type PngChunk } from "./png-text.ts";
export { OutputDir, infotext, pickrankChunk, renderSettings, toPngWithMetadata, RESULT_FILE, JOURNAL_DIR, JOURNAL_FILE } from "./output.ts";
export { formatScore, formatProb } from "./format.ts";
// The scoring prompt lives in core (one implementation for the CLI, the selector and the server).
export { CLIP_CONTENT_TOKENS, resolveScorePrompt, scoringPrompt, type ScorePrompt, type ScorePromptRequest } from "@pickrank/core";
export type * from "./types.ts";

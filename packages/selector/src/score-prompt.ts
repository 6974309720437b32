/**
 * The scoring prompt of each prompt of a best-of run, from bestOf's options: core's resolveScorePrompt
 * (the prompt without A1111 / ComfyUI syntax by default, the caller's text, or the raw prompt).
 */
import { resolveScorePrompt, type ScorePrompt } from "@pickrank/core";

/** The scoring-prompt options of bestOf (BestOfOptions.scorePrompt / scoreRawPrompt). */
export interface ScorePromptOptions {
  scorePrompt?: string | string[] | undefined;
  scoreRawPrompt?: boolean | undefined;
}

/** The scoring prompt of prompt number `pi` of a run (the options are checked by options.ts, the one schema of bestOf). */
export function scorePromptFor(opts: ScorePromptOptions, pi: number, prompt: string, countTokens?: (text: string) => number): ScorePrompt {
  const given = Array.isArray(opts.scorePrompt) ? opts.scorePrompt[pi] : opts.scorePrompt;
  return resolveScorePrompt({ prompt, scorePrompt: given, raw: opts.scoreRawPrompt, countTokens });
}

/**
 * The scoring prompt: which text PickScore compares the candidates with. By default the prompt with
 * its A1111 / ComfyUI syntax removed (prompt-syntax.ts); the user may set it, or ask for the raw text.
 * One implementation for every client: the CLI, the selector and `pickrank serve` (whose plugins ask
 * for it with `cleanPrompt`).
 * Also warns when it is longer than CLIP reads: the text encoder takes 77 ids, the start and end ids
 * included, so every token after the 75th is cut without a word.
 */
import { invalidParameter, PickrankError } from "@pickrank/contract";
import { scoringPrompt } from "./prompt-syntax.ts";

/** Content tokens CLIP's text encoder reads: 77 positions less the start and end ids. */
export const CLIP_CONTENT_TOKENS = 75;

/** Input of resolveScorePrompt: the prompt, the user's scoring prompt or the raw flag, and a token counter. */
export interface ScorePromptRequest {
  /** The prompt sent to the backend. */
  prompt: string;
  /** The user's scoring prompt (wins over everything). */
  scorePrompt?: string | undefined;
  /** Score the prompt exactly as written. */
  raw?: boolean | undefined;
  /** Token counter of the scorer's CLIP tokenizer (without start/end ids); no length check without it. */
  countTokens?: ((text: string) => number) | undefined;
  /**
   * The option that sets the scored text, named in the warnings' advice (default `--score-prompt`, the
   * CLI's); null where the caller has none (the server), so the advice is only to change the prompt.
   */
  scorePromptOption?: string | null | undefined;
}

/**
 * The text PickScore scores against, how it was chosen, its CLIP token count (when counted) and
 * warnings (e.g. longer than the 75 content tokens CLIP reads).
 */
export interface ScorePrompt {
  text: string;
  /** How it was chosen: "given" (by the user), "raw" (the prompt as written), "cleaned" (syntax removed). */
  source: "given" | "raw" | "cleaned";
  /** CLIP tokens of `text` (start/end not counted), when a counter was given. */
  tokens?: number;
  warnings: string[];
}

/**
 * Chooses the scoring prompt and says what is wrong with it: the prompt as given when `raw`, the
 * user's `scorePrompt` when set, else {@link scoringPrompt}(prompt) (the raw prompt, with a warning,
 * when nothing but syntax is left). Throws BAD_INPUT for an empty `scorePrompt` or both `raw` and
 * `scorePrompt` set.
 */
export function resolveScorePrompt(req: ScorePromptRequest): ScorePrompt {
  if (req.raw && req.scorePrompt !== undefined) {
    throw new PickrankError("BAD_INPUT", "Expected either a scoring prompt (--score-prompt) or --score-raw-prompt but received both", {
      details: { parameter: "scorePrompt" },
    });
  }
  if (req.scorePrompt !== undefined && (typeof req.scorePrompt !== "string" || req.scorePrompt.trim() === "")) {
    throw invalidParameter("--score-prompt", "a non-empty text", req.scorePrompt);
  }
  const option = req.scorePromptOption === undefined ? "--score-prompt" : req.scorePromptOption;
  const warnings: string[] = [];
  let text: string;
  let source: ScorePrompt["source"];
  if (req.scorePrompt !== undefined) [text, source] = [req.scorePrompt, "given"];
  else if (req.raw) [text, source] = [req.prompt, "raw"];
  else {
    [text, source] = [scoringPrompt(req.prompt), "cleaned"];
    if (text === "") {
      warnings.push(
        `the prompt ${JSON.stringify(req.prompt)} is nothing but weights and tags, so it is scored as written; ` +
          (option ? `set ${option} to describe the image` : "describe the image in words"),
      );
      [text, source] = [req.prompt, "raw"];
    }
  }
  const out: ScorePrompt = { text, source, warnings };
  if (req.countTokens) {
    out.tokens = req.countTokens(text);
    if (out.tokens > CLIP_CONTENT_TOKENS) warnings.push(tooLongWarning(text, out.tokens, req.countTokens, option));
  }
  return out;
}

/** Says how many tokens are cut and from which word on (words never share a CLIP token, so prefixes add up). */
function tooLongWarning(text: string, tokens: number, count: (t: string) => number, option: string | null): string {
  const words = text.trim().split(/\s+/);
  // Largest k whose first k words fit: binary search, counts grow with k.
  let lo = 0;
  let hi = words.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (count(words.slice(0, mid).join(" ")) <= CLIP_CONTENT_TOKENS) lo = mid;
    else hi = mid - 1;
  }
  const cut = words.slice(lo).join(" ");
  const shown = cut.length > 40 ? `${cut.slice(0, 37)}...` : cut;
  return (
    `the scoring prompt is ${tokens} CLIP tokens but PickScore reads ${CLIP_CONTENT_TOKENS} (77 with start and end): ` +
    `${tokens - CLIP_CONTENT_TOKENS} are cut, from ${JSON.stringify(shown)} on; ${option ? `shorten it or set ${option}` : "shorten it"}`
  );
}

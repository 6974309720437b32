/**
 * The rows `pickrank eval` stores and summarises. These are the boundary between the part that renders,
 * scores and stores (commands, store, resume) and the part that computes the metrics and draws the
 * report: the store writes these rows as they arrive, the metrics read nothing else.
 */

/** One prompt of a prompt set, with the labels its set gives it. */
export interface EvalPrompt {
  /** Stable id within the set (e.g. `parti-0042`, `hpsv2-anime-0007`, `line-12`): the key of every row. */
  id: string;
  /** The prompt text sent to the backend and scored. */
  text: string;
  /** PartiPrompts' Category, or the HPSv2 benchmark's style (anime, concept-art, paintings, photo). */
  category?: string;
  /** PartiPrompts' Challenge column (e.g. "Basic", "Perspective"). */
  challenge?: string;
}

/**
 * One scored candidate: one configuration's image for one prompt and one seed.
 * Rows of the same (promptId, seedIndex) across configurations share the seed, which makes win rates
 * at equal seeds possible.
 */
export interface CandidateRow {
  /** The configuration's name, as the user named it (`--config name=…`), or the folder for `eval images`. */
  config: string;
  promptId: string;
  /** Index of the seed among the prompt's N seeds, 0-based; `seedIndex` 0 is the "first seed" baseline. */
  seedIndex: number;
  /** The seed the backend rendered with; null for `eval images`, where it is not known. */
  seed: number | null;
  /** The selector's PickScore for (prompt, image): logit_scale · cosine, about 15–25 for real PickScore. */
  score: number;
  /** The judge model's score for the same (prompt, image); null when no `--judge` was given. */
  judgeScore: number | null;
  /** Path of the image, relative to the evaluation's output folder (or absolute for `eval images`). */
  image: string;
}

/**
 * One Pick-a-Pic-format human judgement with the model's scores of both images.
 * label0/label1 are the dataset's: (1, 0), (0, 1), or (0.5, 0.5) for a tie.
 */
export interface PairRow {
  id: string;
  caption: string;
  /** The split the pair belongs to: the tie threshold is chosen on "validation", accuracy reported on "test". */
  split: "validation" | "test";
  label0: number;
  label1: number;
  /** PickScore of image 0 and image 1 for the caption. */
  score0: number;
  score1: number;
}

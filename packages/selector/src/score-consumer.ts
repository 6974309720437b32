/**
 * The consumer side of one pass: takes whatever candidates have arrived in the channel — up to
 * `batchSize` at once, never waiting for a full batch — and embeds them with the scorer while the
 * backend keeps rendering. Scores come later (rank.ts), once the pass's survivors are known, because
 * PickScore's probabilities are a softmax over all of them.
 */
import { abortedError, type Channel, PickrankError, toPickrankError } from "@pickrank/contract";
import type { Arrival } from "./produce.ts";
import { failedCandidate } from "./produce.ts";
import type { FailedCandidate, Phase, SelectorScorer } from "./types.ts";

/** A candidate with its L2-normalized PickScore image embedding. */
export interface Embedded extends Arrival {
  embedding: Float32Array;
}

/**
 * Options of consumeAndEmbed: the scorer whose embedImages is called, the largest batch per call, the
 * pass, the abort signal and callbacks for each embedded or failed candidate.
 */
export interface ScoreConsumerOptions {
  scorer: Pick<SelectorScorer, "embedImages">;
  /** Most candidates per scorer call. */
  batchSize: number;
  phase: Phase;
  signal: AbortSignal;
  onEmbedded?: (c: Embedded, count: number) => void;
  onFailed?: (f: FailedCandidate) => void;
}

/**
 * What consumeAndEmbed produced: the candidates with their image embeddings, the ones the scorer could
 * not read, and performance.now() timestamps (ms).
 */
export interface ScoreConsumerReport {
  embedded: Embedded[];
  /** Candidates the scorer could not read (BAD_IMAGE …), each isolated from its batch. */
  failed: FailedCandidate[];
  /** performance.now() of the first embedding (null when none) and of the end. */
  firstAt: number | null;
  endedAt: number;
}

/**
 * Embeds every candidate the channel yields until it is closed and drained.
 * @throws ABORTED when the signal fires (the channel's own error when it was closed with one).
 */
export async function consumeAndEmbed(source: Channel<Arrival>, o: ScoreConsumerOptions): Promise<ScoreConsumerReport> {
  const embedded: Embedded[] = [];
  const failed: FailedCandidate[] = [];
  let firstAt: number | null = null;
  for (;;) {
    if (o.signal.aborted) throw abortedError("best-of", o.signal.reason);
    const batch = await source.take(o.batchSize);
    if (batch.length === 0) break;
    const results = await embedBatch(o, batch);
    if (o.signal.aborted) throw abortedError("best-of", o.signal.reason);
    batch.forEach((a, i) => {
      const r = results[i];
      if (r instanceof Float32Array) {
        const c: Embedded = { ...a, embedding: r };
        embedded.push(c);
        firstAt ??= performance.now();
        o.onEmbedded?.(c, embedded.length);
      } else {
        const error =
          r ??
          new PickrankError("INFERENCE_FAILED", `Expected an embedding for the candidate with seed ${a.seed} but the scorer returned none`);
        const f = failedCandidate(a.index, a.seed, a.backend, o.phase, error);
        failed.push(f);
        o.onFailed?.(f);
      }
    });
  }
  return { embedded, failed, firstAt, endedAt: performance.now() };
}

/** One scorer call for the batch; when it fails, one call per candidate so one bad image does not sink the rest. */
async function embedBatch(o: ScoreConsumerOptions, batch: Arrival[]): Promise<(Float32Array | PickrankError | undefined)[]> {
  const one = async (a: Arrival): Promise<Float32Array | PickrankError | undefined> => {
    try {
      return (await o.scorer.embedImages([a.image], { signal: o.signal }))[0];
    } catch (e) {
      if (o.signal.aborted) throw e;
      return toPickrankError(e, "BAD_IMAGE", `Could not score the candidate with seed ${a.seed}`);
    }
  };
  if (batch.length === 1) return [await one(batch[0]!)];
  try {
    return await o.scorer.embedImages(
      batch.map((b) => b.image),
      { signal: o.signal },
    );
  } catch (e) {
    if (o.signal.aborted) throw e;
    const out: (Float32Array | PickrankError | undefined)[] = [];
    for (const a of batch) out.push(await one(a));
    return out;
  }
}

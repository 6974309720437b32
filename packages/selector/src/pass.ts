/**
 * One pass over a set of candidates (all N, or the best drafts re-rendered at full settings): the
 * producer (produce.ts: journal replay, then the backend) fills a channel while the consumer
 * (score-consumer.ts) embeds micro-batches from it, so scoring overlaps rendering. Either side
 * failing, or the caller's signal, stops both; the backend's generator is always ended, which makes
 * it cancel our prompts on the server.
 */
import { abortedError, Channel, toPickrankError } from "@pickrank/contract";
import { produce, type Arrival, type CandidateJournal } from "./produce.ts";
import { consumeAndEmbed, type Embedded } from "./score-consumer.ts";
import type { BestOfEvent, BestOfOptions, FailedCandidate, Phase, SelectorScorer } from "./types.ts";
import type { GenerationParams } from "@pickrank/contract";

/** What every pass of a run shares. */
export interface PassContext {
  backend: BestOfOptions["backend"];
  scorer: SelectorScorer;
  negativePrompt?: string;
  batchSize: number;
  journal?: CandidateJournal;
  /** The caller's signal. */
  signal?: AbortSignal;
  emit: (e: BestOfEvent) => void;
  warn: (w: { message: string; code?: string; backend?: string }) => void;
}

/**
 * One pass (draft or final) of one prompt: the seeds by candidate index, the indices to render, the
 * generation settings and the prompt's start time (performance.now(), ms).
 */
export interface PassInput {
  promptIndex: number;
  prompt: string;
  phase: Phase;
  /** Seed of each candidate, by index. */
  seeds: readonly number[];
  indices: readonly number[];
  params: GenerationParams;
  /** performance.now() when the prompt started (for firstScoredMs). */
  t0: number;
}

/**
 * What one pass produced: survivors with their embeddings and failures (both in request order), the
 * number replayed from the journal, and timings in ms.
 */
export interface PassOutput {
  /** Survivors with their embeddings, in request order. */
  embedded: Embedded[];
  /** Render and scoring failures, in request order. */
  failed: FailedCandidate[];
  reused: number;
  firstScoredMs: number | null;
  generateMs: number;
  scoreTailMs: number;
}

/**
 * Runs the producer and the consumer of one pass together.
 * @throws ABORTED (the caller's signal), the journal's FILESYSTEM error, or the backend's error when
 *   it returned nothing at all.
 */
export async function runPass(ctx: PassContext, inp: PassInput): Promise<PassOutput> {
  const ctl = new AbortController();
  const onCallerAbort = (): void => ctl.abort(ctx.signal?.reason);
  if (ctx.signal?.aborted) onCallerAbort();
  ctx.signal?.addEventListener("abort", onCallerAbort, { once: true });
  const channel = new Channel<Arrival>();
  // A backend slow to notice the abort must not keep the consumer waiting.
  ctl.signal.addEventListener("abort", () => channel.close(abortedError("best-of", ctl.signal.reason)), { once: true });
  let firstError: unknown;
  const stopBoth = (e: unknown): never => {
    firstError ??= e;
    ctl.abort(e);
    throw e;
  };
  const { promptIndex: pi, phase } = inp;
  const total = inp.indices.length;
  try {
    const consumer = consumeAndEmbed(channel, {
      scorer: ctx.scorer,
      batchSize: ctx.batchSize,
      phase,
      signal: ctl.signal,
      onEmbedded: (c, scored) =>
        ctx.emit({ type: "scored", promptIndex: pi, phase, key: c.key, index: c.index, seed: c.seed, backend: c.backend, scored, total }),
      onFailed: (f) =>
        ctx.emit({ type: "failed", promptIndex: pi, phase, key: f.key, index: f.index, seed: f.seed, backend: f.backend, error: f.error }),
    }).catch(stopBoth);
    const producer = produce(
      {
        promptIndex: pi,
        phase,
        prompt: inp.prompt,
        ...(ctx.negativePrompt !== undefined ? { negativePrompt: ctx.negativePrompt } : {}),
        seeds: inp.seeds,
        indices: inp.indices,
        params: inp.params,
        backend: ctx.backend,
        ...(ctx.journal ? { journal: ctx.journal } : {}),
        signal: ctl.signal,
        emit: ctx.emit,
        warn: ctx.warn,
      },
      channel,
    ).catch(stopBoth);
    const [p, c] = await Promise.allSettled([producer, consumer]);
    if (ctx.signal?.aborted) throw abortedError("best-of", ctx.signal.reason);
    if (p.status === "rejected" || c.status === "rejected") throw toPickrankError(firstError);
    const byIndex = (a: { index: number }, b: { index: number }) => a.index - b.index;
    return {
      embedded: c.value.embedded.sort(byIndex),
      failed: [...p.value.failed, ...c.value.failed].sort(byIndex),
      reused: p.value.reused,
      firstScoredMs: c.value.firstAt === null ? null : c.value.firstAt - inp.t0,
      generateMs: p.value.endedAt - p.value.startedAt,
      scoreTailMs: Math.max(0, c.value.endedAt - p.value.endedAt),
    };
  } finally {
    ctx.signal?.removeEventListener("abort", onCallerAbort);
  }
}

/**
 * The producer side of one pass: candidates a previous run already recorded in the progress journal
 * are replayed first, the backend renders the others, and each one goes into the channel the moment
 * it exists — after its bytes and journal record are on disk, so a kill never loses a candidate that
 * was handed on. Candidates are named by key (String(index)) end to end: the backend echoes the key,
 * so results need no remapping. The consumer (score-consumer.ts) reads the same channel.
 */
import type { Backend, BackendEvent, CandidateMeta, Channel, GenerateRequest, GenerationParams } from "@pickrank/contract";
import { PickrankError, toPickrankError } from "@pickrank/contract";
import type { BestOfEvent, CandidateTimings, FailedCandidate, Phase } from "./types.ts";

/** A rendered candidate on its way to the scorer: from the backend, or replayed from the journal. */
export interface Arrival {
  key: string;
  index: number;
  seed: number;
  backend: string;
  format: "png" | "jpeg" | "webp";
  image: Buffer;
  timings: CandidateTimings;
  meta?: CandidateMeta;
  /** True when it came from the journal of an earlier run instead of the backend. */
  reused: boolean;
}

/** A candidate as the journal stores it (its bytes in a file beside the journal). */
export interface JournalRecord {
  index: number;
  seed: number;
  backend: string;
  format: "png" | "jpeg" | "webp";
  timings: CandidateTimings;
  meta?: CandidateMeta;
  file: string;
}

/** What the producer needs of the progress journal (OutputDir in output.ts implements it). */
export interface CandidateJournal {
  stored(promptIndex: number, phase: Phase, index: number): JournalRecord | undefined;
  load(record: JournalRecord): Promise<Buffer>;
  /** Puts the bytes on disk, then appends the record; resolves once both are complete. */
  save(promptIndex: number, phase: Phase, c: Omit<JournalRecord, "file"> & { image: Buffer }): Promise<void>;
}

/** One pass's rendering job: the candidates (`indices` into `seeds`) to replay from the journal or render on the backend. */
export interface ProduceRequest {
  promptIndex: number;
  phase: Phase;
  prompt: string;
  negativePrompt?: string;
  /** Seed of each candidate, by index (0..n-1). */
  seeds: readonly number[];
  /** The candidates of this pass (all of them, or the best drafts for the final pass). */
  indices: readonly number[];
  params: GenerationParams;
  backend: Backend;
  journal?: CandidateJournal;
  signal: AbortSignal;
  emit: (e: BestOfEvent) => void;
  /** The backend's warning events (a pool member down …), as they happen. */
  warn: (w: { message: string; code?: string; backend?: string }) => void;
}

/**
 * What produce() did: the failed candidates, how many were replayed from the journal, and when the
 * backend started and finished (performance.now() values, ms).
 */
export interface ProduceReport {
  /** Candidates the backend reported failed, or never returned. */
  failed: FailedCandidate[];
  /** Candidates replayed from the journal. */
  reused: number;
  /** When the backend started and finished (performance.now()); equal when nothing was rendered. */
  startedAt: number;
  endedAt: number;
}

/** A FailedCandidate of this pass. */
export function failedCandidate(index: number, seed: number, backend: string, phase: Phase, error: PickrankError): FailedCandidate {
  return { ok: false, key: String(index), index, seed, backend, phase, error };
}

/**
 * Fills `sink` with the pass's candidates, then closes it (also on failure).
 * @throws ABORTED when the signal fires; the journal's FILESYSTEM / NOT_FOUND when a candidate cannot be
 *   recorded; the backend's own error when it failed before returning anything.
 */
export async function produce(req: ProduceRequest, sink: Channel<Arrival>): Promise<ProduceReport> {
  try {
    const { toRender, replayed } = await replayJournal(req, sink);
    const startedAt = performance.now();
    const failed = toRender.length > 0 && !req.signal.aborted ? await render(req, toRender, replayed, sink) : [];
    return { failed, reused: replayed, startedAt, endedAt: performance.now() };
  } finally {
    sink.close();
  }
}

/** Journal records of this pass go first, straight to scoring; returns what is left to render. */
async function replayJournal(req: ProduceRequest, sink: Channel<Arrival>): Promise<{ toRender: number[]; replayed: number }> {
  const { journal, promptIndex: pi, phase } = req;
  const toRender: number[] = [];
  const replayed: Arrival[] = [];
  for (const index of req.indices) {
    const st = journal?.stored(pi, phase, index);
    if (!st || !journal) {
      toRender.push(index);
      continue;
    }
    const image = await journal.load(st);
    const a: Arrival = {
      key: String(index),
      index,
      seed: st.seed,
      backend: st.backend,
      format: st.format,
      image,
      timings: st.timings,
      reused: true,
    };
    if (st.meta) a.meta = st.meta;
    replayed.push(a);
  }
  req.emit({ type: "prompt-start", promptIndex: pi, prompt: req.prompt, phase, n: req.indices.length, reused: replayed.length });
  replayed.forEach((a, i) => {
    sink.push(a);
    req.emit({
      type: "rendered",
      promptIndex: pi,
      phase,
      key: a.key,
      index: a.index,
      seed: a.seed,
      backend: a.backend,
      reused: true,
      rendered: i + 1,
      total: req.indices.length,
    });
  });
  return { toRender, replayed: replayed.length };
}

/** Asks the backend for `toRender`; every candidate it returns is journaled, then pushed. */
async function render(
  req: ProduceRequest,
  toRender: number[],
  alreadyRendered: number,
  sink: Channel<Arrival>,
): Promise<FailedCandidate[]> {
  const { promptIndex: pi, phase, backend } = req;
  const failed: FailedCandidate[] = [];
  const pending = new Set(toRender);
  let rendered = alreadyRendered;
  let generationError: unknown;
  let journalError: unknown;
  const gen: GenerateRequest = {
    prompt: req.prompt,
    n: toRender.length,
    seeds: toRender.map((i) => req.seeds[i]!),
    keys: toRender.map(String),
    params: req.params,
    signal: req.signal,
    onEvent: (e: BackendEvent) => {
      req.emit({ type: "backend", promptIndex: pi, phase, event: e });
      if (e.type === "warning") req.warn({ message: e.message, backend: e.backend, ...(e.code !== undefined ? { code: e.code } : {}) });
    },
  };
  if (req.negativePrompt !== undefined) gen.negativePrompt = req.negativePrompt;
  try {
    for await (const g of backend.generate(gen)) {
      // A backend slow to notice the abort: stop taking its candidates (break ends its generator, which cancels our prompts).
      if (req.signal.aborted) break;
      const index = Number(g.key);
      if (!pending.delete(index)) continue; // unknown or duplicate key: nothing to attach it to
      if (!g.ok) {
        const f = failedCandidate(index, g.seed, g.backend, phase, g.error);
        failed.push(f);
        req.emit({ type: "failed", promptIndex: pi, phase, key: f.key, index, seed: g.seed, backend: g.backend, error: g.error });
        continue;
      }
      const a: Arrival = {
        key: g.key,
        index,
        seed: g.seed,
        backend: g.backend,
        format: g.format,
        image: g.image,
        timings: g.timings,
        reused: false,
      };
      if (g.meta) a.meta = g.meta;
      try {
        await req.journal?.save(pi, phase, a);
      } catch (e) {
        journalError = e; // not the backend's fault: fatal, the run cannot keep its promise to resume
        break;
      }
      sink.push(a);
      rendered++;
      req.emit({
        type: "rendered",
        promptIndex: pi,
        phase,
        key: a.key,
        index,
        seed: a.seed,
        backend: a.backend,
        reused: false,
        rendered,
        total: req.indices.length,
      });
    }
  } catch (e) {
    if (req.signal.aborted) throw e;
    generationError = e;
  }
  if (journalError !== undefined) throw journalError;
  if (req.signal.aborted) return failed;
  const gone = missing(req, [...pending], toRender.length, generationError);
  for (const f of gone)
    req.emit({ type: "failed", promptIndex: pi, phase, key: f.key, index: f.index, seed: f.seed, backend: f.backend, error: f.error });
  return [...failed, ...gone];
}

/** Candidates the backend never returned: its error when it threw, else a protocol error each. */
function missing(req: ProduceRequest, indices: number[], asked: number, generationError: unknown): FailedCandidate[] {
  if (indices.length === 0) return [];
  if (generationError !== undefined) {
    const err = toPickrankError(generationError, "BACKEND_PROTOCOL");
    // Nothing at all came back: the backend's own error says more than "too few candidates".
    if (indices.length === asked && indices.length === req.indices.length) throw err;
    return indices.map((i) => failedCandidate(i, req.seeds[i]!, req.backend.id, req.phase, err));
  }
  return indices.map((i) =>
    failedCandidate(
      i,
      req.seeds[i]!,
      req.backend.id,
      req.phase,
      new PickrankError(
        "BACKEND_PROTOCOL",
        `Expected the backend to return the candidate with seed ${req.seeds[i]} but it finished without it`,
      ),
    ),
  );
}

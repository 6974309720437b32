/**
 * The two halves of a pass, each without a server or a model: the producer (journal replay, then the
 * backend, into a Channel) and the micro-batching scoring consumer (out of a Channel).
 */
import { describe, expect, it } from "vitest";
import { Channel, PickrankError } from "@pickrank/contract";
import {
  consumeAndEmbed,
  produce,
  type Arrival,
  type BestOfEvent,
  type CandidateJournal,
  type JournalRecord,
  type ProduceRequest,
} from "@pickrank/selector";
import { MemoryBackend } from "../../../test/helpers/memory-backend.ts";

/** A journal in memory that records the order of saves against what the channel has seen. */
class MemoryJournal implements CandidateJournal {
  readonly records = new Map<string, JournalRecord & { image: Buffer }>();
  readonly saves: string[] = [];
  failOnSave = false;
  stored(p: number, phase: string, index: number): JournalRecord | undefined {
    return this.records.get(`${p}/${phase}/${index}`);
  }
  async load(r: JournalRecord): Promise<Buffer> {
    return [...this.records.values()].find((x) => x.file === r.file)!.image;
  }
  async save(p: number, phase: string, c: Omit<JournalRecord, "file"> & { image: Buffer }): Promise<void> {
    if (this.failOnSave) throw new PickrankError("FILESYSTEM", "Could not write the journal: no space left on the device (ENOSPC)");
    this.saves.push(c.seed.toString());
    this.records.set(`${p}/${phase}/${c.index}`, { ...c, file: `work/${c.index}` });
  }
}

function request(
  backend: MemoryBackend,
  over: Partial<ProduceRequest> = {},
): ProduceRequest & { events: BestOfEvent[]; warnings: string[] } {
  const events: BestOfEvent[] = [];
  const warnings: string[] = [];
  return {
    promptIndex: 0,
    phase: "final",
    prompt: "p",
    seeds: [10, 11, 12, 13],
    indices: [0, 1, 2, 3],
    params: {},
    backend,
    signal: new AbortController().signal,
    emit: (e) => events.push(e),
    warn: (w) => warnings.push(w.message),
    events,
    warnings,
    ...over,
  };
}

async function drain(ch: Channel<Arrival>): Promise<Arrival[]> {
  const out: Arrival[] = [];
  for await (const a of ch) out.push(a);
  return out;
}

describe("produce", () => {
  it("replays journal records first, renders only the rest, keys every candidate by its index, and records each before handing it on", async () => {
    const journal = new MemoryJournal();
    await journal.save(0, "final", {
      index: 2,
      seed: 12,
      backend: "earlier",
      format: "png",
      timings: { queuedMs: 0, renderMs: 0, totalMs: 0 },
      image: Buffer.from("old"),
    });
    const backend = new MemoryBackend();
    const ch = new Channel<Arrival>();
    const seenAtPush: number[] = [];
    const push = ch.push.bind(ch);
    ch.push = (a: Arrival) => {
      seenAtPush.push(journal.saves.length);
      push(a);
    };
    const req = request(backend, { journal });
    const report = await produce(req, ch);
    const got = await drain(ch);
    expect(got.map((a) => [a.key, a.seed, a.reused])).toEqual([
      ["2", 12, true],
      ["0", 10, false],
      ["1", 11, false],
      ["3", 13, false],
    ]);
    expect(backend.requests[0]!.seeds).toEqual([10, 11, 13]);
    expect(backend.requests[0]!.keys).toEqual(["0", "1", "3"]);
    // Each rendered candidate was in the journal before the consumer could see it (1 replayed save, then 1, 2, 3).
    expect(seenAtPush).toEqual([1, 2, 3, 4]);
    expect(report).toMatchObject({ failed: [], reused: 1 });
    expect(ch.isClosed).toBe(true);
    expect(req.events.filter((e) => e.type === "rendered").map((e) => (e as { rendered: number }).rendered)).toEqual([1, 2, 3, 4]);
  });

  it("reports failed and never-returned candidates in the contract's FailedCandidate shape, with phase and index", async () => {
    const backend = new MemoryBackend({ failSeeds: [11], dieAfter: 3 });
    const ch = new Channel<Arrival>();
    const report = await produce(request(backend, { phase: "draft" }), ch);
    expect((await drain(ch)).map((a) => a.seed)).toEqual([10, 12]);
    expect(report.failed.map((f) => [f.ok, f.key, f.index, f.seed, f.phase, f.error.code])).toEqual([
      [false, "1", 1, 11, "draft", "BACKEND_REJECTED"],
      [false, "3", 3, 13, "draft", "BACKEND_UNREACHABLE"],
    ]);
  });

  it("throws the backend's own error when nothing at all came back", async () => {
    const ch = new Channel<Arrival>();
    await expect(produce(request(new MemoryBackend({ unreachable: true })), ch)).rejects.toMatchObject({ code: "BACKEND_UNREACHABLE" });
    expect(ch.isClosed).toBe(true);
  });

  it("stops at a journal that cannot be written (fatal, not a candidate failure) and ends the backend's generator", async () => {
    const journal = new MemoryJournal();
    journal.failOnSave = true;
    let ended = false;
    const backend = new MemoryBackend({ onEnd: () => (ended = true) });
    await expect(produce(request(backend, { journal }), new Channel<Arrival>())).rejects.toMatchObject({ code: "FILESYSTEM" });
    expect(ended).toBe(true);
    expect(backend.rendered).toHaveLength(1);
  });

  it("passes the backend's warning events on", async () => {
    const req = request(new MemoryBackend({ warnings: ["member b is down"] }));
    await produce(req, new Channel<Arrival>());
    expect(req.warnings).toEqual(["member b is down"]);
  });
});

function arrival(i: number, image = Buffer.from([i])): Arrival {
  return {
    key: String(i),
    index: i,
    seed: 100 + i,
    backend: "m",
    format: "png",
    image,
    timings: { queuedMs: 0, renderMs: 0, totalMs: 0 },
    reused: false,
  };
}

/** Embeds byte b as the 1-dim vector [b]; byte 255 is "not an image". */
function fakeScorer(calls: number[][]) {
  return {
    async embedImages(images: readonly unknown[]): Promise<Float32Array[]> {
      const bytes = images.map((b) => (b as Buffer)[0]!);
      calls.push(bytes);
      if (bytes.includes(255)) throw new PickrankError("BAD_IMAGE", "Expected an image but received bytes that are none");
      return bytes.map((b) => Float32Array.of(b));
    },
  };
}

describe("consumeAndEmbed", () => {
  it("takes what has arrived, up to batchSize at once, without waiting for a full batch", async () => {
    const ch = new Channel<Arrival>();
    const calls: number[][] = [];
    [0, 1, 2, 3, 4].forEach((i) => ch.push(arrival(i)));
    const done = consumeAndEmbed(ch, { scorer: fakeScorer(calls), batchSize: 2, phase: "final", signal: new AbortController().signal });
    await new Promise((r) => setTimeout(r, 0));
    ch.push(arrival(5)); // arrives alone later: scored alone, not held back for a partner
    await new Promise((r) => setTimeout(r, 0));
    ch.close();
    const r = await done;
    expect(calls).toEqual([[0, 1], [2, 3], [4], [5]]);
    expect(r.embedded.map((c) => [c.key, c.embedding[0]])).toEqual([0, 1, 2, 3, 4, 5].map((i) => [String(i), i]));
    expect(r.failed).toEqual([]);
  });

  it("isolates an unreadable image: its batch is scored one by one, only it fails", async () => {
    const ch = new Channel<Arrival>();
    const calls: number[][] = [];
    ch.push(arrival(0));
    ch.push(arrival(1, Buffer.from([255])));
    ch.push(arrival(2));
    ch.close();
    const r = await consumeAndEmbed(ch, { scorer: fakeScorer(calls), batchSize: 8, phase: "draft", signal: new AbortController().signal });
    expect(calls).toEqual([[0, 255, 2], [0], [255], [2]]);
    expect(r.embedded.map((c) => c.index)).toEqual([0, 2]);
    expect(r.failed.map((f) => [f.key, f.seed, f.phase, f.error.code])).toEqual([["1", 101, "draft", "BAD_IMAGE"]]);
  });

  it("stops with ABORTED when the signal fires while it waits", async () => {
    const ch = new Channel<Arrival>();
    const ctl = new AbortController();
    const p = consumeAndEmbed(ch, { scorer: fakeScorer([]), batchSize: 2, phase: "final", signal: ctl.signal });
    ctl.abort();
    ch.close(new PickrankError("ABORTED", "The best-of was cancelled"));
    await expect(p).rejects.toMatchObject({ code: "ABORTED" });
  });
});

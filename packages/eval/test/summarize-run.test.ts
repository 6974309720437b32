import { describe, expect, it } from "vitest";
import { bestOfKCurve, type CandidateRow, type EvalPrompt, selectorPickCurve, summarizeRun } from "../src/index.ts";

const prompts: EvalPrompt[] = [
  { id: "p1", text: "a red cube", category: "Artifacts", challenge: "Basic" },
  { id: "p2", text: "a fox in snow", category: "Animals", challenge: "Basic" },
  { id: "p3", text: "two cats", category: "Animals", challenge: "Quantity" },
];

/** rows for a configuration from per-prompt selector (and judge) scores, seedIndex = position. */
function rows(config: string, scores: Record<string, number[]>, judge?: Record<string, number[]>): CandidateRow[] {
  return Object.entries(scores).flatMap(([promptId, s]) =>
    s.map((score, seedIndex) => ({
      config,
      promptId,
      seedIndex,
      seed: 1000 + seedIndex,
      score,
      judgeScore: judge ? judge[promptId]![seedIndex]! : null,
      image: `${config}/${promptId}-${seedIndex}.png`,
    })),
  );
}

const A = { p1: [20, 22, 21, 19], p2: [18, 18, 23, 20], p3: [21, 20, 20, 24] };
const AJ = { p1: [1, 3, 2, 0], p2: [5, 1, 2, 2], p3: [0, 4, 4, 1] };
const B = { p1: [19, 23, 20, 19], p2: [17, 19, 22, 21], p3: [20, 20, 21, 23] };
const BJ = { p1: [2, 2, 2, 2], p2: [1, 1, 1, 1], p3: [3, 3, 3, 3] };
const C = { p1: [18, 18, 18, 18], p2: [16, 16, 16, 16], p3: [19, 19, 19, 19] };
const CJ = { p1: [0, 0, 0, 0], p2: [0, 0, 0, 0], p3: [0, 0, 0, 0] };

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("summarizeRun", () => {
  const all = [...rows("A", A, AJ), ...rows("B", B, BJ), ...rows("C", C, CJ)];
  const s = summarizeRun(prompts, all, { bootstrap: { seed: 7, resamples: 400 } });

  it("the best-of-k curve is the mean over prompts of the exact per-prompt expectation", () => {
    const a = s.configs.find((c) => c.config === "A")!;
    expect(a.kMax).toBe(4);
    const per = Object.values(A).map(bestOfKCurve);
    a.selector.curve.points.forEach((p, i) => {
      expect(p.k).toBe(i + 1);
      expect(p.estimate).toBeCloseTo(mean(per.map((c) => c[i]!)), 12);
      expect(p.lo).toBeLessThanOrEqual(p.estimate + 1e-12);
      expect(p.hi).toBeGreaterThanOrEqual(p.estimate - 1e-12);
    });
    // k = N: the mean of the per-prompt maxima.
    expect(a.selector.curve.points[3]!.estimate).toBeCloseTo((22 + 23 + 24) / 3, 12);
    expect(a.selector.curve.method).toMatch(/C\(i−1,k−1\)\/C\(N,k\)/);
  });

  it("gains: over a random pick (k = 1) and over seedIndex 0", () => {
    const a = s.configs[0]!;
    const per = Object.values(A).map(bestOfKCurve);
    expect(a.selector.gainOverRandom.points[0]!.estimate).toBeCloseTo(0, 12);
    expect(a.selector.gainOverRandom.points[3]!.estimate).toBeCloseTo(mean(per.map((c) => c[3]! - c[0]!)), 12);
    const firsts = Object.values(A).map((x) => x[0]!);
    expect(a.selector.gainOverFirstSeed!.points[3]!.estimate).toBeCloseTo(mean(per.map((c, i) => c[3]! - firsts[i]!)), 12);
    expect(a.selector.gainOverFirstSeed!.prompts).toBe(3);
  });

  it("the judge's score of the selector's pick, per prompt and averaged", () => {
    const a = s.configs[0]!;
    const per = Object.keys(A).map((id) => selectorPickCurve(A[id as keyof typeof A], AJ[id as keyof typeof AJ]));
    a.judge!.curve.points.forEach((p, i) => expect(p.estimate).toBeCloseTo(mean(per.map((c) => c[i]!)), 12));
    // p2 at k = 4: the pick is seed 2 (23), judge 2.
    expect(a.perPrompt[1]!.judgeOfPick![3]).toBeCloseTo(2, 12);
    expect(a.perPrompt[1]!.pickSeedIndex).toBe(2);
    expect(a.judge!.gainOverFirstSeed!.points[0]!.estimate).toBeCloseTo(mean([1.5 - 1, 2.5 - 5, 2.25 - 0]), 12);
  });

  it("score distributions over every candidate", () => {
    const d = s.configs[2]!.selector.distribution;
    expect(d).toMatchObject({ n: 12, min: 16, max: 19, median: 18 });
    expect(d.mean).toBeCloseTo((18 + 16 + 19) / 3, 12);
  });

  it("win rates at equal seeds with ties ½, both directions, and their intervals", () => {
    const ab = s.winRates.find((w) => w.a === "A" && w.b === "B" && w.score === "selector")!;
    // p1: 20>19, 22<23, 21>20, 19=19 → 2 wins 1 tie 1 loss; p2: 18>17, 18<19, 23>22, 20<21 → 2/0/2;
    // p3: 21>20, 20=20, 20<21, 24>23 → 2/1/1.
    expect(ab).toMatchObject({ pairs: 12, prompts: 3, wins: 6, ties: 2, losses: 4 });
    expect(ab.rate!.estimate).toBeCloseTo(7 / 12, 14);
    const ba = s.winRates.find((w) => w.a === "B" && w.b === "A" && w.score === "selector")!;
    expect(ba.rate!.estimate).toBeCloseTo(5 / 12, 14);
    expect(ba.rate!.lo).toBeCloseTo(1 - ab.rate!.hi, 12);
    const ac = s.winRates.find((w) => w.a === "A" && w.b === "C" && w.score === "judge")!;
    // AJ against all-zero CJ: zeros at p1 seed 3 and p3 seed 0 tie, the other ten win.
    expect(ac).toMatchObject({ wins: 10, ties: 2, losses: 0 });
  });

  it("Bradley–Terry ratings for more than two configurations, best first", () => {
    const bt = s.bradleyTerry.find((b) => b.score === "selector")!;
    expect(bt.converged).toBe(true);
    expect(bt.priorTies).toBe(1);
    expect(bt.ratings.map((r) => r.config)).toEqual(["A", "B", "C"]);
    expect(bt.ratings.reduce((a, r) => a + r.logStrength, 0)).toBeCloseTo(0, 9);
    expect(s.bradleyTerry.map((b) => b.score)).toEqual(["selector", "judge"]);
    for (const r of bt.ratings) {
      expect(r.logStrengthInterval.lo).toBeLessThanOrEqual(r.logStrength + 1e-12);
      expect(r.logStrengthInterval.hi).toBeGreaterThanOrEqual(r.logStrength - 1e-12);
    }
    // A clear winner: C never beats A or B under the selector, so its whole interval sits below A's.
    const [a, , c] = bt.ratings;
    expect(c!.logStrengthInterval.hi).toBeLessThan(a!.logStrengthInterval.lo);
  });

  it("breakdowns per category and challenge at k = kMax", () => {
    const g = s.breakdowns.find((x) => x.field === "category" && x.value === "Animals" && x.config === "A")!;
    expect(g.prompts).toBe(2);
    expect(g.k).toBe(4);
    expect(g.selectorBestOfK.estimate).toBeCloseTo((23 + 24) / 2, 12);
    expect(g.selectorGainOverRandom.estimate).toBeCloseTo((23 - 19.75 + 24 - 21.25) / 2, 12);
    const fields = new Set(s.breakdowns.map((x) => `${x.field}:${x.value}`));
    expect(fields).toEqual(new Set(["category:Animals", "category:Artifacts", "challenge:Basic", "challenge:Quantity"]));
  });

  it("is deterministic for a seed; the seed changes the intervals only", () => {
    const again = summarizeRun(prompts, all, { bootstrap: { seed: 7, resamples: 400 } });
    expect(again).toEqual(s);
    const other = summarizeRun(prompts, all, { bootstrap: { seed: 8, resamples: 400 } });
    expect(other.configs[0]!.selector.curve.points.map((p) => p.estimate)).toEqual(
      s.configs[0]!.selector.curve.points.map((p) => p.estimate),
    );
    expect(other.configs[0]!.selector.curve.points.map((p) => p.lo)).not.toEqual(s.configs[0]!.selector.curve.points.map((p) => p.lo));
    expect(JSON.parse(JSON.stringify(s))).toEqual(s); // JSON-safe: no NaN, no undefined
  });

  it("uneven N: curves stop at the smallest N, a missing first seed leaves that prompt out of that gain", () => {
    const r = rows("A", { p1: [1, 2, 3], p2: [5, 6] }).filter((x) => !(x.promptId === "p2" && x.seedIndex === 0));
    const u = summarizeRun(prompts, [...r, { ...r[0]!, promptId: "p2", seedIndex: 5, score: 4, image: "x.png" }]);
    const c = u.configs[0]!;
    expect(c.kMax).toBe(2);
    expect(c.candidatesPerPrompt).toEqual({ min: 2, max: 3 });
    expect(c.selector.gainOverFirstSeed!.prompts).toBe(1);
    expect(c.judge).toBeNull();
    expect(u.notes.join("\n")).toMatch(/1 prompt\(s\) have no candidate in any configuration: p3/);
    expect(u.notes.join("\n")).toMatch(/configuration A: curves stop at k = 2, the N of 1 prompt\(s\) \(p2\)/);
  });

  it("judge scores on only some rows: judge metrics left out, with a note", () => {
    const r = rows("A", A, AJ);
    r[0] = { ...r[0]!, judgeScore: null };
    const u = summarizeRun(prompts, r);
    expect(u.configs[0]!.judge).toBeNull();
    expect(u.notes[0]).toMatch(/1 of 12 candidates have no judge score/);
  });

  it("two configurations: win rates, no Bradley–Terry", () => {
    const u = summarizeRun(prompts, [...rows("A", A), ...rows("B", B)], { configs: ["B", "A"] });
    expect(u.configs.map((c) => c.config)).toEqual(["B", "A"]);
    expect(u.bradleyTerry).toEqual([]);
    expect(u.winRates.map((w) => `${w.a}>${w.b}:${w.score}`)).toEqual(["B>A:selector", "A>B:selector"]);
  });

  it("configurations with no (prompt, seed index) in common: no win rate, and a note that says why", () => {
    const only = summarizeRun(prompts, [...rows("A", { p1: A.p1 }), ...rows("B", { p2: B.p2 })], { bootstrap: { seed: 7, resamples: 50 } });
    const ab = only.winRates.find((w) => w.a === "A" && w.b === "B")!;
    expect(ab).toMatchObject({ pairs: 0, rate: null });
    expect(only.notes).toContain(
      "no win rate between A and B: they share no (prompt, seed index); win rates compare the candidates of the same prompt and seed index",
    );
    expect(s.notes.filter((n) => n.startsWith("no win rate"))).toEqual([]);
  });

  it("BAD CALL - a duplicate row, an unknown prompt or an unlisted configuration is BAD_INPUT", () => {
    const r = rows("A", A);
    expect(() => summarizeRun(prompts, [...r, r[0]!])).toThrow(/one row per \(config, promptId, seedIndex\)/);
    expect(() => summarizeRun(prompts, [{ ...r[0]!, promptId: "nope" }])).toThrow(/Expected the id of a prompt/);
    expect(() => summarizeRun(prompts, r, { configs: ["B"] })).toThrow(expect.objectContaining({ code: "BAD_INPUT" }));
    expect(() => summarizeRun(prompts, [{ ...r[0]!, score: Number.POSITIVE_INFINITY }])).toThrow(/for row.score/);
  });
});

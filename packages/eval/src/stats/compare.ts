/**
 * Configurations against each other at equal seeds: for a (prompt, seedIndex) that two configurations
 * both rendered, the one with the higher score wins (½ each when equal). Win rates pool those
 * comparisons with an interval over prompts; Bradley–Terry ratings fit all configurations at once.
 */
import type { CandidateRow } from "../records.ts";
import { type BootstrapOptions, bootstrap } from "./bootstrap.ts";
import { bradleyTerry } from "./bradley-terry.ts";
import { RUN_METHODS } from "./methods.ts";
import type { BradleyTerrySummary, WinRate } from "./types.ts";

type Score = "selector" | "judge";

/** Per prompt: wins, ties and losses of a against b. */
interface Tally {
  wins: number;
  ties: number;
  losses: number;
}

function value(r: CandidateRow, score: Score): number {
  return score === "selector" ? r.score : r.judgeScore!;
}

/** Per-prompt tallies of a against b at equal seedIndex, over the prompts both have. */
export function tallyPairs(a: Map<string, CandidateRow[]>, b: Map<string, CandidateRow[]>, score: Score): Tally[] {
  const out: Tally[] = [];
  for (const [promptId, rowsA] of a) {
    const rowsB = b.get(promptId);
    if (!rowsB) continue;
    const bySeed = new Map(rowsB.map((r) => [r.seedIndex, r]));
    const t: Tally = { wins: 0, ties: 0, losses: 0 };
    for (const ra of rowsA) {
      const rb = bySeed.get(ra.seedIndex);
      if (!rb) continue;
      const d = value(ra, score) - value(rb, score);
      if (d > 0) t.wins++;
      else if (d < 0) t.losses++;
      else t.ties++;
    }
    if (t.wins + t.ties + t.losses > 0) out.push(t);
  }
  return out;
}

function winRate(a: string, b: string, score: Score, tallies: Tally[], boot: BootstrapOptions): WinRate {
  const sum = (k: keyof Tally) => tallies.reduce((s, t) => s + t[k], 0);
  const [wins, ties, losses] = [sum("wins"), sum("ties"), sum("losses")];
  const pairs = wins + ties + losses;
  let rate: WinRate["rate"] = null;
  if (pairs > 0) {
    const r = bootstrap(
      tallies.length,
      (units) => {
        let num = 0;
        let den = 0;
        for (const u of units) {
          const t = tallies[u]!;
          num += t.wins + t.ties / 2;
          den += t.wins + t.ties + t.losses;
        }
        return [num / den];
      },
      boot,
    );
    rate = { estimate: r.estimate[0]!, lo: r.lo[0]!, hi: r.hi[0]! };
  }
  return { a, b, score, method: RUN_METHODS.winRate, pairs, prompts: tallies.length, wins, ties, losses, rate };
}

/**
 * Win rates of every ordered pair of `configs` (selector score, and judge score when `withJudge`), and
 * Bradley–Terry ratings of each score when there are more than two configurations.
 */
export function compareConfigs(
  configs: readonly string[],
  byConfig: Map<string, Map<string, CandidateRow[]>>,
  boot: BootstrapOptions,
  priorTies: number,
  withJudge: boolean,
): { winRates: WinRate[]; bradleyTerry: BradleyTerrySummary[]; notes: string[] } {
  const winRates: WinRate[] = [];
  const notes: string[] = [];
  const bt: BradleyTerrySummary[] = [];
  const scores: Score[] = withJudge ? ["selector", "judge"] : ["selector"];
  for (const score of scores) {
    const m = configs.length;
    const wins = Array.from({ length: m }, () => new Array<number>(m).fill(0));
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i === j) continue;
        const tallies = tallyPairs(byConfig.get(configs[i]!)!, byConfig.get(configs[j]!)!, score);
        const w = winRate(configs[i]!, configs[j]!, score, tallies, boot);
        winRates.push(w);
        wins[i]![j] = w.wins + w.ties / 2;
      }
    }
    const alone = configs.filter((_, i) => wins.every((row, j) => row[i] === 0 && wins[i]![j] === 0));
    if (m > 2 && alone.length > 0) notes.push(`no Bradley–Terry ratings (${score}): ${alone.join(", ")} shares no seed with the others`);
    else if (m > 2) bt.push(ratings(configs, wins, score, priorTies));
  }
  return { winRates, bradleyTerry: bt, notes };
}

function ratings(configs: readonly string[], wins: number[][], score: Score, priorTies: number): BradleyTerrySummary {
  const fit = bradleyTerry(wins, { priorTies });
  const list = configs.map((config, i) => ({ config, strength: fit.strength[i]!, logStrength: fit.logStrength[i]! }));
  list.sort((x, y) => y.strength - x.strength);
  return { score, method: RUN_METHODS.bradleyTerry, priorTies, iterations: fit.iterations, converged: fit.converged, ratings: list };
}

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
  promptId: string;
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
    const t: Tally = { promptId, wins: 0, ties: 0, losses: 0 };
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
  const sum = (k: "wins" | "ties" | "losses") => tallies.reduce((s, t) => s + t[k], 0);
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
    // promptId → that prompt's m × m win matrix (wins + ties/2), for the ratings' bootstrap.
    const perPrompt = new Map<string, Float64Array>();
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < m; j++) {
        if (i === j) continue;
        const tallies = tallyPairs(byConfig.get(configs[i]!)!, byConfig.get(configs[j]!)!, score);
        const w = winRate(configs[i]!, configs[j]!, score, tallies, boot);
        winRates.push(w);
        wins[i]![j] = w.wins + w.ties / 2;
        for (const t of tallies) {
          let mat = perPrompt.get(t.promptId);
          if (!mat) perPrompt.set(t.promptId, (mat = new Float64Array(m * m)));
          mat[i * m + j] = t.wins + t.ties / 2;
        }
      }
    }
    if (score === "selector") {
      for (const w of winRates) {
        if (w.score === score && w.pairs === 0 && configs.indexOf(w.a) < configs.indexOf(w.b)) {
          notes.push(
            `no win rate between ${w.a} and ${w.b}: they share no (prompt, seed index); ` +
              "win rates compare the candidates of the same prompt and seed index",
          );
        }
      }
    }
    const alone = configs.filter((_, i) => wins.every((row, j) => row[i] === 0 && wins[i]![j] === 0));
    if (m > 2 && alone.length > 0) notes.push(`no Bradley–Terry ratings (${score}): ${alone.join(", ")} shares no seed with the others`);
    else if (m > 2) bt.push(ratings(configs, [...perPrompt.values()], score, priorTies, boot));
  }
  return { winRates, bradleyTerry: bt, notes };
}

/** Sums per-prompt m × m matrices over the prompts drawn into a square number[][]. */
function sumMatrices(mats: readonly Float64Array[], units: Int32Array, m: number): number[][] {
  const total = new Float64Array(m * m);
  for (const u of units) {
    const mat = mats[u]!;
    for (let k = 0; k < m * m; k++) total[k]! += mat[k]!;
  }
  return Array.from({ length: m }, (_, i) => Array.from(total.subarray(i * m, (i + 1) * m)));
}

function ratings(
  configs: readonly string[],
  mats: Float64Array[],
  score: Score,
  priorTies: number,
  boot: BootstrapOptions,
): BradleyTerrySummary {
  const m = configs.length;
  const fit = bradleyTerry(sumMatrices(mats, Int32Array.from(mats.keys()), m), { priorTies });
  // Resampled prompts: refit, keep the log-strengths; a draw where a configuration has no comparison is left out.
  const r = bootstrap(
    mats.length,
    (units) => {
      try {
        return bradleyTerry(sumMatrices(mats, units, m), { priorTies }).logStrength;
      } catch {
        return new Array<number>(m).fill(Number.NaN);
      }
    },
    boot,
  );
  const list = configs.map((config, i) => ({
    config,
    strength: fit.strength[i]!,
    logStrength: fit.logStrength[i]!,
    logStrengthInterval: { lo: r.lo[i]!, hi: r.hi[i]! },
  }));
  list.sort((x, y) => y.strength - x.strength);
  return { score, method: RUN_METHODS.bradleyTerry, priorTies, iterations: fit.iterations, converged: fit.converged, ratings: list };
}

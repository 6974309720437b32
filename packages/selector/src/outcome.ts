/**
 * What a prompt's failures mean: one summary line per cause instead of one per candidate, and the
 * rule that decides between a result and TOO_FEW_CANDIDATES.
 */
import { PickrankError } from "@pickrank/contract";
import type { FailedCandidate, FailureGroup, Phase } from "./types.ts";

/**
 * The message with what differs between candidates of one cause (the seed, the server's prompt id)
 * taken out, so a dead server's N failures group as one.
 */
function causeText(f: FailedCandidate): string {
  let m = f.error.message;
  const promptId = f.error.details?.["promptId"];
  if (typeof promptId === "string" && promptId !== "") m = m.split(promptId).join("…");
  // ComfyUI prompt ids are UUIDs; a message may name another candidate's (the request that failed first).
  m = m.replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, "…");
  // "seed 11" only: a bare number could be part of an address ("127.0.0.1").
  return m.replace(new RegExp(`\\b(seed:?\\s*)${f.seed}(?!\\d)`, "gi"), "$1…");
}

/** Failures grouped by (phase, code, cause), largest group first, seeds in request order. */
export function groupFailures(failed: readonly FailedCandidate[]): FailureGroup[] {
  const groups = new Map<string, FailureGroup>();
  for (const f of [...failed].sort((a, b) => a.index - b.index)) {
    const id = `${f.phase}\u0000${f.error.code}\u0000${causeText(f)}`;
    const g = groups.get(id);
    if (g) {
      g.count++;
      g.seeds.push(f.seed);
    } else {
      groups.set(id, { phase: f.phase, code: f.error.code, message: f.error.message, count: 1, seeds: [f.seed] });
    }
  }
  return [...groups.values()].sort((a, b) => b.count - a.count);
}

/** "13 × BACKEND_UNREACHABLE: Could not reach … (seeds 5, 6, 7 …)" for each group. */
export function describeFailures(groups: readonly FailureGroup[], maxSeeds = 8): string[] {
  return groups.map((g) => {
    const seeds = g.seeds.slice(0, maxSeeds).join(", ") + (g.seeds.length > maxSeeds ? ", …" : "");
    return `${g.count} × ${g.code}${g.phase === "draft" ? " (draft)" : ""}: ${g.message} (seed${g.count > 1 ? "s" : ""} ${seeds})`;
  });
}

function quote(prompt: string): string {
  return JSON.stringify(prompt.length > 60 ? `${prompt.slice(0, 57)}...` : prompt);
}

/**
 * Throws TOO_FEW_CANDIDATES when fewer than `min` of `asked` survived a pass, naming the causes.
 * @param minName how messages name minSurvivors ("--min" for the CLI).
 */
export function checkSurvivors(o: {
  prompt: string;
  survived: number;
  asked: number;
  min: number;
  failed: FailedCandidate[];
  phase: Phase;
  minName: string;
}): void {
  if (o.survived >= o.min) return;
  const groups = groupFailures(o.failed.filter((f) => f.phase === o.phase));
  const why = groups.length > 0 ? `; failures: ${describeFailures(groups, 4).join("; ")}` : "";
  const hint = o.min > 1 ? ` (${o.minName} ${o.min})` : "";
  throw new PickrankError(
    "TOO_FEW_CANDIDATES",
    `Expected at least ${o.min} surviving candidate(s) for ${quote(o.prompt)} but ${o.survived} of ${o.asked} survived` +
      `${o.phase === "draft" ? " the draft pass" : ""}${hint}${why}`,
    {
      cause: o.failed.find((f) => f.phase === o.phase)?.error,
      details: {
        survived: o.survived,
        asked: o.asked,
        minSurvivors: o.min,
        phase: o.phase,
        failed: o.failed.map((f) => ({ index: f.index, seed: f.seed, code: f.error.code })),
        failures: groups.map((g) => ({ code: g.code, message: g.message, count: g.count, seeds: g.seeds })),
      },
    },
  );
}

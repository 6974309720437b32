/**
 * The method strings every number of the summaries carries: one place, so the JSON, the report and
 * the docs say the same thing.
 */
export const RUN_METHODS = {
  distribution: "every candidate's score of the configuration; sd with n − 1; quartiles linear between order statistics (numpy default)",
  bestOfK:
    "exact expectation of the highest selector score among k of the prompt's N candidates drawn without replacement: " +
    "scores ascending, E = Σ_i s_(i)·C(i−1,k−1)/C(N,k) (order statistics, as pass@k), then the mean over prompts",
  judgeOfPick:
    "exact expectation of the judge score of the candidate with the highest selector score among k of N drawn without " +
    "replacement: judge scores ordered by selector score with the same weights C(i−1,k−1)/C(N,k); equal selector scores " +
    "share their weights evenly (a uniformly random pick among them); then the mean over prompts",
  gainOverRandom: "per prompt, the curve at k minus the curve at k = 1 (a random pick's expected score), then the mean over prompts",
  gainOverFirstSeed:
    "per prompt, the curve at k minus the score of the candidate of seedIndex 0, then the mean over the prompts that have one",
  group: "the configuration's per-prompt values at k = its kMax, averaged over the prompts of the group",
  winRate:
    "for each (prompt, seedIndex) both configurations rendered, 1 if a's score is higher, ½ if equal, 0 if lower; " +
    "pooled over all such pairs; interval by resampling prompts",
  bradleyTerry:
    "Bradley–Terry strengths fitted by Hunter's MM algorithm to the win counts at equal seeds (a tie is ½ win each way), " +
    "with priorTies virtual ties per compared pair; geometric mean of the strengths 1; log-strength intervals by refitting on " +
    "resampled prompts",
  bootstrap:
    "percentile bootstrap over prompts: B resamples of the prompts with replacement (pure-rand xoroshiro128+ from the seed), " +
    "interval = the (1−c)/2 and (1+c)/2 quantiles of the resampled statistic",
} as const;

"""What to keep and in which order, from a batch's PickScore results; how the numbers are printed.

Pure functions over plain lists (no A1111, no torch), so the rules are tested on their own:
- images are grouped by prompt (scores compare images of the same prompt only); each group is one
  softmax, and N in "rank r/N" is the number of images of the group that were scored;
- `min_score` drops the images scoring below it, but never a whole group: when every image of a
  group is below, its best one stays and a note says so;
- `keep_top_k` keeps the k best of each group (0: all);
- `reorder` puts each group best first, groups in the order their first image came; without it the
  kept images stay where they were. Images the server could not score are kept, after the scored ones.
"""
import math
from decimal import ROUND_HALF_UP, Decimal


def _to_fixed(x, digits):
    """JavaScript's Number.prototype.toFixed(digits): the exact binary value rounded half away from zero."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        x = 0.0  # (-0).toFixed(3) is "0.000"
    return str(Decimal(x).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP))


def format_score(score):
    """A PickScore score as the CLI prints it (packages/selector/src/format.ts formatScore): 3 decimals."""
    return _to_fixed(score, 3)


def format_prob(prob):
    """A softmax probability as the CLI prints it (formatProb): 4 decimals."""
    return _to_fixed(prob, 4)


def group_ids(prompts):
    """One group id per image: images with the same prompt share one, numbered by first appearance."""
    ids = {}
    return [ids.setdefault(p, len(ids)) for p in prompts]


def plan(results, groups, keep_top_k=0, min_score=None, reorder=True):
    """Which images to keep, in output order.

    results: per image, a dict with "score" and "rank" (rank within its group, 1 = best) or None when the
    image was not scored; groups: per image, its group id (group_ids). Returns (order, dropped, notes):
    order, the kept images' indices in output order; dropped, the other indices in input order; notes,
    sentences for the user (a group whose images all scored below min_score).
    """
    members = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    kept = set()
    notes = []
    for g, idx in members.items():
        scored = sorted((i for i in idx if results[i] is not None), key=lambda i: (results[i]["rank"], i))
        survivors = scored
        if min_score is not None:
            survivors = [i for i in scored if results[i]["score"] >= min_score]
            if scored and not survivors:
                best = scored[0]
                survivors = [best]
                notes.append(
                    f"all {len(scored)} images scored below the minimum score {min_score:g} "
                    f"(best {format_score(results[best]['score'])}); the best one is kept"
                )
        if keep_top_k and keep_top_k > 0:
            survivors = survivors[:keep_top_k]
        kept.update(survivors)
        kept.update(i for i in idx if results[i] is None)
    if reorder:
        order = []
        for g, idx in members.items():
            order.extend(sorted((i for i in idx if i in kept and results[i] is not None), key=lambda i: (results[i]["rank"], i)))
            order.extend(i for i in idx if i in kept and results[i] is None)
    else:
        order = [i for i in range(len(groups)) if i in kept]
    dropped = [i for i in range(len(groups)) if i not in kept]
    return order, dropped, notes
